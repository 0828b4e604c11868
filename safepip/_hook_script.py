"""Call one PEP 517 hook of a build backend; run by the build environment's own interpreter.

Run as ``python -I _hook_script.py HOOK BACKEND BACKEND_PATH_JSON OUT_DIR RESULT_FILE`` with the
source tree as working folder. It imports nothing of safepip (the build environment holds only
the pool's wheels) and writes the hook's result as JSON to RESULT_FILE: the list of extra
requirements for ``get_requires_for_build_wheel``, the wheel's basename for ``build_wheel``.
"""

import importlib
import json
import os
import sys
from pathlib import Path


def main() -> int:
    hook, reference, backend_path, out_dir, result_file = sys.argv[1:6]
    # The mode of every file the backend writes must not depend on who runs the build.
    os.umask(0o022)
    for folder in reversed(json.loads(backend_path)):
        sys.path.insert(0, str(Path(folder).absolute()))
    module_name, _, attribute = reference.partition(":")
    backend = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        backend = getattr(backend, part)
    if hook == "get_requires_for_build_wheel":
        function = getattr(backend, hook, None)
        result = [] if function is None else list(function(None))
    elif hook == "build_wheel":
        result = backend.build_wheel(out_dir, None, None)
    else:
        raise SystemExit(f"unknown hook {hook}")
    Path(result_file).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
