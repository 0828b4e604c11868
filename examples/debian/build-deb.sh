#!/usr/bin/env bash
# Build hello_1.0_all.deb: a venv in /opt/hello holding only vetted wheels, installed by
# `safepip install`, packaged so that two builds in two folders give the same bytes.
#
#   build-deb.sh WORKDIR OUT.deb
#
# Run it where safepip finds its configuration (safepip.toml: the list and the pinned keys).
# Environment: SAFEPIP (default `safepip`), PYTHON (the interpreter the venv is made from,
# default /usr/bin/python3), REQUIREMENTS (the app's hashed lock file, required),
# SOURCE_DATE_EPOCH (default: the newest commit's time, else 1700000000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 WORKDIR OUT.deb" >&2; exit 2; }
command -v dpkg-deb >/dev/null || { echo "error: dpkg-deb not found: apt-get install dpkg" >&2; exit 2; }
work=$(realpath -m "$1")
out=$(realpath -m "$2")
SAFEPIP=${SAFEPIP:-safepip}
PYTHON=${PYTHON:-/usr/bin/python3}
REQUIREMENTS=${REQUIREMENTS:?set REQUIREMENTS to the hashed lock file of the app: safepip lock -o FILE}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 1700000000)
fi
export SOURCE_DATE_EPOCH TZ=UTC LC_ALL=C.UTF-8
umask 022

app=/opt/hello
root=$work/root
rm -rf "$root"
mkdir -p "$root$app" "$root/DEBIAN" "$root/usr/bin"

# --without-pip: ensurepip's pip and setuptools are on no list, so they do not ship.
"$PYTHON" -m venv --without-pip "$root$app/venv"
$SAFEPIP install --python "$root$app/venv/bin/python" -r "$REQUIREMENTS"
# .pyc files record the folder they were compiled in: drop them and their RECORD rows (Python
# writes them again on first import, or a postinst compiles them at their final path).
find "$root$app" -depth -name __pycache__ -type d -exec rm -rf {} +
find "$root$app" -path '*.dist-info/RECORD' -type f -exec sed -i '/__pycache__\//d' {} +

# The venv was made in the build folder: give it its installed path (pyvenv.cfg, activate
# scripts, console-script shebangs are the only files that name it).
grep -rlIF -- "$root" "$root$app" | while IFS= read -r file; do
  sed -i "s|$root||g" "$file"
done
# RECORD holds the hash of each installed file: recompute it for the files just rewritten.
"$PYTHON" -I - "$root$app/venv" <<'PY'
import base64, csv, hashlib, io, pathlib, sys
for record in pathlib.Path(sys.argv[1]).glob("lib/python*/site-packages/*.dist-info/RECORD"):
    rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
    for row in rows:
        path = record.parent.parent / row[0]
        if len(row) == 3 and row[1] and path.is_file():
            data = path.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            row[1:] = [f"sha256={digest.decode()}", str(len(data))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    record.write_text(out.getvalue(), encoding="utf-8")
PY
if grep -rqF -- "$work" "$root"; then
  echo "error: the build folder is still named in:" >&2
  grep -rlF -- "$work" "$root" >&2
  exit 1
fi
ln -s "$app/venv/bin/hello" "$root/usr/bin/hello"

cat > "$root/DEBIAN/control" <<CONTROL
Package: hello
Version: 1.0
Architecture: all
Maintainer: safepip example <nobody@example.invalid>
Depends: python3
Section: misc
Priority: optional
Description: hello, in a venv of wheels vetted by safepip
 Every wheel in /opt/hello/venv was on a signed list; built reproducibly.
CONTROL

# Same times and modes whatever the folder, the clock or the umask of the build.
chmod -R go-w "$root"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "built $out: sha256 $(sha256sum "$out" | cut -d' ' -f1)"
