"""govern.paging (a page of a list, counted or read one row ahead) and the one pager macro."""

from __future__ import annotations

from flask import render_template_string
from sqlalchemy import event, func, select

from govern.directory.models import Person
from govern.paging import Page, count_of, page_of, read_page
from tests.factories import make_person


def test_a_counted_page_knows_its_neighbours_and_the_number_of_pages():
    first, middle, last = (Page([], n, 10, total=25) for n in (1, 2, 3))
    assert (first.has_previous, first.has_next, first.pages) == (False, True, 3)
    assert (middle.has_previous, middle.has_next) == (True, True)
    assert (last.has_previous, last.has_next) == (True, False)
    assert Page([], 1, 10, total=0).pages == 1 and not Page([], 1, 10, total=10).has_next


def test_a_page_read_ahead_knows_only_whether_more_follow():
    assert Page([], 2, 10, more=True).has_next and Page([], 2, 10, more=True).pages is None
    assert not Page([], 2, 10).has_next


def test_read_page_counts_or_reads_one_row_ahead(db, connection):
    for n in range(7):
        make_person(db, full_name=f"Paged {n}")
    db.flush()
    people = select(Person.full_name).where(Person.full_name.like("Paged %")).order_by(Person.full_name)

    counted = read_page(db, people, 2, 5, count=count_of(people), scalars=True)
    assert (counted.items, counted.total, counted.has_next) == (["Paged 5", "Paged 6"], 7, False)
    ahead = read_page(db, people, 1, 5, scalars=True)
    assert (ahead.items, ahead.total, ahead.has_next) == ([f"Paged {n}" for n in range(5)], None, True)
    assert not read_page(db, people, 2, 5, scalars=True).has_next
    rows = read_page(db, people, 1, 5, count=count_of(people))
    assert [row.full_name for row in rows.items][:1] == ["Paged 0"]

    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    nobody = people.where(Person.full_name == "Nobody at all")
    event.listen(connection, "before_cursor_execute", before)
    try:
        empty = read_page(db, nobody, 1, 5, count=select(func.count()).select_from(nobody.subquery()))
    finally:
        event.remove(connection, "before_cursor_execute", before)
    assert (empty.items, empty.total) == ([], 0) and len(seen) == 1  # the count only: no page to read


def test_page_of_cuts_rows_already_read():
    page = page_of(list(range(12)), 3, 5)
    assert (page.items, page.total, page.has_previous, page.has_next) == ([10, 11], 12, True, False)


def test_the_pager_links_the_neighbours_keeping_the_other_arguments(app):
    template = '{% from "_macros/pager.html" import pager with context %}{{ pager(page, previous="Back", next="On") }}'
    with app.test_request_context("/people/?page=2&q=ada&status=active&status=leaving&department=&_external=1"):
        html = render_template_string(template, page=Page([], 2, 50, total=120))
    assert 'href="/people/?q=ada&amp;status=active&amp;status=leaving&amp;page=1">Back</a>' in html
    assert 'href="/people/?q=ada&amp;status=active&amp;status=leaving&amp;page=3">On</a>' in html
    assert "page 2 of 3" in html and "department" not in html and "_external" not in html and "http" not in html

    with app.test_request_context("/jobs/?failed_page=3&page=2"):
        html = render_template_string('{% from "_macros/pager.html" import pager with context %}{{ pager(page, "failed_page") }}',
                                      page=Page([], 3, 20, more=False))
    assert 'href="/jobs/?page=2&amp;failed_page=2">← Previous</a>' in html and "Next" not in html and "page 3<" in html

    with app.test_request_context("/reviews/7?page=1"):
        assert render_template_string(template, page=Page([], 1, 50, total=3)).strip() == ""
