"""safepip.index: a hostile project page is data, never a crash."""

from __future__ import annotations

import pytest

from safepip.errors import FetchError
from safepip.index import file_links, parse_page

PAGE_URL = "https://mirror.example/simple/gamma/"
GOOD = '<a href="../../gamma-0.1-py3-none-any.whl#sha256=ab">gamma-0.1-py3-none-any.whl</a>\n'


def test_links_are_absolute_without_fragment() -> None:
    assert file_links(GOOD, PAGE_URL) == {
        "gamma-0.1-py3-none-any.whl": "https://mirror.example/gamma-0.1-py3-none-any.whl"
    }


def test_first_link_for_a_filename_wins() -> None:
    page = GOOD + '<a href="https://other.example/gamma-0.1-py3-none-any.whl">x</a>'
    assert (
        parse_page(page, PAGE_URL)
        .links["gamma-0.1-py3-none-any.whl"]
        .startswith("https://mirror.example/")
    )


@pytest.mark.parametrize("href", ["http://[oops/gamma-0.2.tar.gz", "https://[::1/x.whl"])
def test_a_link_that_is_not_a_url_is_skipped_and_reported(href: str) -> None:
    page = parse_page(GOOD + f'<a href="{href}">x</a>', PAGE_URL)
    assert list(page.links) == ["gamma-0.1-py3-none-any.whl"]
    assert page.skipped == (href,)


def test_percent_encoded_filename_is_decoded() -> None:
    page = parse_page('<a href="gamma-0.1%2Bloc-py3-none-any.whl">x</a>', PAGE_URL)
    assert list(page.links) == ["gamma-0.1+loc-py3-none-any.whl"]


@pytest.mark.parametrize("markup", ["<![xyz]>", "<![ bogus [ x ]]>"])
def test_markup_the_html_parser_gives_up_on_is_a_fetch_error(markup: str) -> None:
    with pytest.raises(FetchError) as info:
        parse_page(GOOD + markup, PAGE_URL)
    assert PAGE_URL in str(info.value) and "not a readable project page" in str(info.value)
    assert info.value.exit_code == 3


def test_binary_garbage_is_just_a_page_without_links() -> None:
    assert parse_page("\x00\ufffd<<a>>\x7f", PAGE_URL).links == {}
