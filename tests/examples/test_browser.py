"""The demo site in a real browser (Debian Chromium driven by Playwright).

What a new user does after the README's demo command: chat between two windows,
watch a liveblog update while posting in the admin, and keep working across a
server restart. Screenshots of both pages go to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .demo import ROOT, DemoServer, demo_env, manage

SCREENSHOTS = ROOT / "docs" / "screenshots"
#: Longest wait for a page to reconnect after the server is back. djwire.js waits at
#: most 10 s (maxDelay) between attempts, less jitter.
RECONNECT_TIMEOUT_MS = 20_000


def expect(target: Any) -> Any:
    # Imported late: without playwright, the browser fixture skips (or fails in CI).
    from playwright.sync_api import expect

    return expect(target)


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Take a screenshot; it replaces the committed one in docs/screenshots/ when that
    is missing or DJWIRE_UPDATE_SCREENSHOTS=1 (so test runs do not dirty the tree)."""
    target = SCREENSHOTS / name
    if not target.exists() or os.environ.get("DJWIRE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    else:
        target = tmp_path / name
    page.screenshot(path=str(target))
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return target


def log_in(page: Any, server: DemoServer, next_path: str = "/") -> None:
    page.goto(f"{server.url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{next_path}")


def wait_connected(page: Any, timeout: int | None = None) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "open", timeout=timeout)


def say(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def message_line(page: Any, text: str) -> Any:
    """A delivered (not pending) chat line with exactly this text."""
    return page.locator(".message:not(.pending)").filter(
        has=page.locator(".text", has_text=re.compile("^" + re.escape(text) + "$"))
    )


def no_page_errors(page: Any) -> None:
    errors = [text for text in page.console_messages if text.startswith("pageerror")]
    assert not errors, errors


def test_two_visitors_chat_in_one_room(
    demo_server: DemoServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    guest, member = new_page(), new_page()
    log_in(member, demo_server, "/chat/")
    room = demo_server.url + "/chat/browser-test/"
    guest.goto(room)
    member.goto(room)
    wait_connected(guest)
    wait_connected(member)
    expect(member.locator("#you")).to_have_text("demo")
    guest_name = guest.locator("#you").inner_text()
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ \d\d", guest_name), guest_name

    say(guest, "Hello from the guest window")
    line = message_line(member, "Hello from the guest window")
    expect(line).to_be_visible()
    expect(line.locator(".author")).to_have_text(guest_name)
    expect(line.locator(".badge")).to_have_text("guest")
    expect(message_line(guest, "Hello from the guest window")).to_have_class(
        re.compile(r"\bmine\b")
    )

    say(member, "<b>Hi</b> & welcome, <i>guest</i>")
    shown = message_line(guest, "<b>Hi</b> & welcome, <i>guest</i>")
    expect(shown).to_be_visible()
    expect(shown.locator(".author")).to_have_text("demo")
    # Shown as typed: the markup is text, not elements.
    assert guest.locator("#messages b, #messages i").count() == 0

    # The input is limited in the page as on the server.
    assert member.get_attribute("#message", "maxlength") == "500"

    # A later visitor gets the conversation from the database on join.
    late = new_page()
    late.goto(room)
    expect(message_line(late, "Hello from the guest window")).to_be_visible()
    expect(message_line(late, "<b>Hi</b> & welcome, <i>guest</i>")).to_be_visible()

    say(guest, "Nice to meet you, demo!")
    expect(message_line(member, "Nice to meet you, demo!")).to_be_visible()
    screenshot(member, "chat.png", tmp_path)
    for page in (guest, member, late):
        no_page_errors(page)


def test_post_saved_in_the_admin_appears_live(
    demo_server: DemoServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    reader, editor = new_page(), new_page()
    blog = demo_server.url + "/liveblog/launch-day/"
    reader.goto(blog)
    wait_connected(reader)
    reader.evaluate("window.notReloaded = true")
    posts_before = reader.locator(".post").count()

    log_in(editor, demo_server, "/liveblog/launch-day/")
    add_url = editor.get_attribute("a.button", "href")
    editor.goto(demo_server.url + add_url)
    editor.fill("#id_title", "Live from the admin")
    editor.fill("#id_body", "Saved in the admin, shown without a reload.")
    editor.click("input[name=_save]")
    expect(editor.locator(".messagelist")).to_contain_text("was added successfully")

    post = reader.locator(
        ".post", has=reader.locator(".post-title", has_text="Live from the admin")
    )
    expect(post).to_be_visible()
    expect(reader.locator(".post").first).to_have_id(re.compile(r"post-\d+"))
    assert reader.locator(".post").first.get_attribute("id") == post.get_attribute("id")
    assert reader.locator(".post").count() == posts_before + 1
    screenshot(reader, "liveblog.png", tmp_path)

    # Edited in the admin: replaced in place, not added again.
    post_id = post.get_attribute("data-id")
    editor.goto(f"{demo_server.url}/admin/liveblog/post/{post_id}/change/")
    editor.fill("#id_body", "Edited: now with more detail.")
    editor.click("input[name=_save]")
    expect(post.locator(".post-body")).to_have_text("Edited: now with more detail.")
    assert reader.locator(".post").count() == posts_before + 1

    # Deleted in the admin: gone from the page.
    editor.goto(f"{demo_server.url}/admin/liveblog/post/{post_id}/delete/")
    editor.click("input[type=submit]")
    expect(reader.locator(f"#post-{post_id}")).to_have_count(0)
    assert reader.evaluate("window.notReloaded") is True
    no_page_errors(reader)


def test_pages_reconnect_after_a_server_restart(
    demo_db: Path, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    env = demo_env(demo_db)
    server = DemoServer(env, tmp_path / "server.log")
    server.start()
    try:
        chat, blog = new_page(), new_page()
        chat.goto(server.url + "/chat/restart-test/")
        blog.goto(server.url + "/liveblog/bake-off-final/")
        wait_connected(chat)
        wait_connected(blog)
        say(chat, "Before the restart")
        expect(message_line(chat, "Before the restart")).to_be_visible()

        server.stop()
        expect(chat.locator("#status")).not_to_have_attribute("data-state", "open")
        expect(blog.locator("#status")).not_to_have_attribute("data-state", "open")
        # Typed while the server is away: djwire.js queues it (shown as pending).
        say(chat, "Typed while offline")
        expect(chat.locator(".message.pending")).to_have_count(1)
        # Saved while the server is away, by another process: the page asks for
        # what it missed when it reconnects (?since=).
        manage(env, "liveblog_post", "bake-off-final", "Saved while the server was down")

        server.start()  # same port
        wait_connected(chat, timeout=RECONNECT_TIMEOUT_MS)
        wait_connected(blog, timeout=RECONNECT_TIMEOUT_MS)
        expect(message_line(chat, "Typed while offline")).to_be_visible()
        expect(chat.locator(".message.pending")).to_have_count(0)
        expect(
            blog.locator(".post-body", has_text="Saved while the server was down")
        ).to_be_visible()

        # And it keeps working.
        say(chat, "After the restart")
        expect(message_line(chat, "After the restart")).to_be_visible()
        # History replayed on rejoin is not shown twice.
        expect(message_line(chat, "Before the restart")).to_have_count(1)
        for page in (chat, blog):
            no_page_errors(page)
    finally:
        server.stop()


def test_pages_fit_a_phone_screen(
    demo_server: DemoServer, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    page = new_page(viewport=(375, 740))
    for path in ("/", "/liveblog/", "/liveblog/launch-day/", "/chat/", "/chat/phone/"):
        page.goto(demo_server.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    wait_connected(page)
    say(page, "Typed on a phone")
    expect(message_line(page, "Typed on a phone")).to_be_visible()
    # The composer stays on screen.
    box = page.locator("#composer").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 740
    screenshot(page, "chat-phone.png", tmp_path)
    no_page_errors(page)
