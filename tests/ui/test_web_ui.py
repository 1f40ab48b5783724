"""The Temporal Web UI that `promoter up` serves (UI 2.54), driven by headless Chromium as a person
would use it: find the waiting promotion by its search attributes, open it, and send the `approve`
update through the UI's own dialog (More Actions → Send an Update). An approver the policies refuse
(the commit's author, for prod) sees the policy's reason in the dialog and the gate keeps waiting;
an allowed approver's typed name is refused (the sample's prod requires signed approvals), and the
payload `promoter approve --sign-key … --print-payload` prints, pasted into the same dialog, opens it.

Chromium is the Debian package (`.ci/run` installs `chromium` when missing), driven by Playwright's
Python package with `executable_path`; no browser is ever downloaded. Screenshots are saved under
`test-artifacts/web-ui/` (or $PROMOTER_ARTIFACTS). The UI refreshes itself, so the test waits for
elements, never for "networkidle".
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.support.gitops import ROOT, Cli, Origin

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("PROMOTER_ARTIFACTS", ROOT / "test-artifacts")) / "web-ui"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/setup-system installs it (scripts/test runs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def ui_url(cli: Cli) -> str:
    url: str = json.loads((cli.state_dir / "stack.json").read_text())["ui_url"]
    return url


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_waiting_promotion(page: Page, ui: str, app: str) -> None:
    """The workflow list filtered by search attributes, as a person bookmarks it; visibility is
    eventually consistent, so reload until the row is there (with a deadline)."""
    query = f'PromotionState="awaiting_approval" AND PromotionApp="{app}"'
    page.goto(f"{ui}/namespaces/default/workflows?query={urllib.parse.quote(query)}")
    link = page.get_by_role("link", name=f"promote-{app}").first
    deadline = time.monotonic() + 120  # a loaded machine draws the page slowly: 15 s per load before reloading
    while True:
        try:
            link.wait_for(state="visible", timeout=15000)
            break
        except Exception:  # noqa: BLE001 - not there yet: reload again
            assert time.monotonic() < deadline, "the waiting promotion never appeared in the filtered list"
            page.reload()
    shot(page, "1-filtered-list")
    link.click()
    page.get_by_role("button", name="More Actions").wait_for(state="visible", timeout=30000)


def send_update(page: Page, name: str, payload: dict[str, str]) -> Locator:
    """More Actions → Send an Update → pick the update, type its JSON input, Submit; returns the dialog."""
    page.get_by_role("button", name="More Actions").click()
    page.get_by_role("menuitem", name="Send an Update").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_role("button", name="Select an Update").click()
    dialog.get_by_role("option", name=name, exact=True).click()
    dialog.get_by_role("textbox", name="Data").click()
    page.keyboard.press("Control+A")  # the dialog keeps the last input: replace it
    page.keyboard.press("Delete")
    page.keyboard.type(json.dumps(payload))
    # the editor re-formats its JSON when it loses focus, which moves the button under a mouse
    # click; pressing Enter on the focused Submit button is what a keyboard user does
    dialog.get_by_test_id("confirm-modal-button").press("Enter")
    return dialog


def test_approve_through_the_web_ui(stack: tuple[Cli, Origin], browser: Browser) -> None:
    cli, origin = stack
    path = "environments/dev/demo/deployment.yaml"
    text = re.sub(r"demo:[\w.\-]+", "demo:7.7.7", (origin.work / path).read_text())
    origin.repo.git.pull("-q", "--rebase", "origin", "main")
    (origin.work / path).write_text(text)
    origin.repo.git.execute(
        ["git", "-c", "user.name=alice", "-c", "user.email=alice@example.com", "commit", "-qam", "demo 7.7.7 by alice"]
    )
    origin.repo.git.push("-q", "origin", "main")
    commit = origin.repo.head.commit.hexsha
    started = cli("promote", "demo")
    assert started.returncode == 0, started.stderr
    cli.wait_status("promote-demo", lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_waiting_promotion(page, ui_url(cli), "demo")
    shot(page, "2-workflow-page")

    # the commit's author may not approve prod: the policy's reason, in the dialog, and nothing else
    dialog = send_update(page, "approve", {"env": "prod", "approver": "alice", "comment": "my own change"})
    reason = f"alice wrote commit {commit[:7]} and may not approve it for prod"
    dialog.get_by_text(reason).wait_for(state="visible", timeout=30000)
    shot(page, "3-refused-in-the-dialog")
    assert 'File "' not in dialog.inner_text()  # no stack trace under the reason
    dialog.get_by_test_id("cancel-modal-button").click()
    status = cli.status("promote-demo")
    prod = status["stages"][2]  # type: ignore[index]
    assert prod["state"] == "awaiting_approval" and prod["approvals"] == []

    # bob is a release manager, but prod requires signed approvals: his typed name alone is refused
    dialog = send_update(page, "approve", {"env": "prod", "approver": "bob", "comment": "ship it"})
    dialog.get_by_text("prod requires signed approvals").wait_for(state="visible", timeout=30000)
    shot(page, "4-unsigned-refused")
    dialog.get_by_test_id("cancel-modal-button").click()

    # bob signs with his key (`--print-payload` sends nothing) and pastes the payload: the gate opens
    key = str(cli.state_dir / "keys" / "bob")
    printed = cli("approve", "promote-demo", "--env", "prod", "--as", "bob", "--comment", "ship it")
    assert printed.returncode == 2  # unsigned, through the CLI too
    printed = cli(
        "approve",
        "promote-demo",
        "--env",
        "prod",
        "--as",
        "bob",
        "--comment",
        "ship it",
        "--sign-key",
        key,
        "--print-payload",
    )
    assert printed.returncode == 0, printed.stderr
    dialog = send_update(page, "approve", json.loads(printed.stdout))
    dialog.wait_for(state="hidden", timeout=30000)  # a successful update closes the dialog
    shot(page, "5-approved-signed")
    final = cli.wait_status("promote-demo", lambda s: s["state"] != "running", timeout_s=120)
    assert final["state"] == "succeeded", final["message"]
    approvals = final["stages"][2]["approvals"]  # type: ignore[index]
    assert [(a["approver"], a["via"], a["comment"], a["proof"]) for a in approvals] == [
        ("bob", "ui", "ship it", "signed")
    ]
    page.reload()
    page.get_by_text("COMPLETED").first.wait_for(state="visible", timeout=30000)
    shot(page, "6-completed")
    page.close()


def link_in_details(page: Page, timeout_s: float = 30) -> Locator:
    """The PR link of the workflow's current details (User Metadata tab): the Web UI draws the
    markdown in frames of its own, so every frame is looked in (until the deadline)."""
    page.get_by_text("User Metadata", exact=True).first.click()
    deadline = time.monotonic() + timeout_s
    while True:
        for frame in page.frames:
            link = frame.locator("a[href*='/pulls/']")
            if link.count():
                return link.first
        assert time.monotonic() < deadline, "no pull request link in the workflow's current details"
        page.wait_for_timeout(200)


def details_text(page: Page) -> str:
    return "\n".join(frame.locator("body").inner_text() for frame in page.frames[1:] if frame.url.startswith("http"))


def test_review_the_pr_on_the_forge_page_opened_from_the_web_ui(stack: tuple[Cli, Origin], browser: Browser) -> None:
    cli, origin = stack
    path = "environments/dev/demo/deployment.yaml"
    origin.repo.git.pull("-q", "--rebase", "origin", "main")
    (origin.work / path).write_text(re.sub(r"demo:[\w.\-]+", "demo:8.8.8", (origin.work / path).read_text()))
    message = "<script>window.pwned=1</script> demo 8.8.8"  # the PR body quotes the commit's message
    origin.repo.git.execute(
        ["git", "-c", "user.name=carol", "-c", "user.email=carol@example.com", "commit", "-qam", message]
    )
    origin.repo.git.push("-q", "origin", "main")
    commit = origin.repo.head.commit.hexsha
    assert cli("promote", "demo").returncode == 0
    waiting = cli.wait_status(
        "promote-demo", lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval"
    )
    prod_pr = waiting["stages"][2]["pr_url"]  # type: ignore[index]
    forge_url = json.loads((cli.state_dir / "stack.json").read_text())["forge_url"]
    assert prod_pr.startswith(f"{forge_url}/pulls/")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_waiting_promotion(page, ui_url(cli), "demo")
    link = link_in_details(page)
    assert link.get_attribute("href") == prod_pr
    shot(page, "6-details-with-the-pr-link")
    with page.context.expect_page() as opened:
        link.click()
    pr = opened.value
    pr.wait_for_load_state()
    assert pr.url == prod_pr
    pr.locator("pre.diff").get_by_text("demo:8.8.8").wait_for(state="visible", timeout=10000)
    assert pr.evaluate("window.pwned") is None  # the commit message's script is shown, never run
    assert message in pr.locator(".body").first.inner_text()
    shot(pr, "7-forge-pr-page")

    def review(reviewer: str, comment: str) -> None:
        pr.get_by_label("Reviewer").fill(reviewer)
        pr.get_by_label("Approve").check()
        pr.get_by_label("Comment", exact=True).fill(comment)
        pr.get_by_role("button", name="Submit review").click()
        pr.locator("td", has_text=comment).wait_for(state="visible", timeout=10000)

    # mallory may not decide prod: the forge records the review, the gate refuses it and says so
    review("mallory", "me too")
    refused = cli.wait_status("promote-demo", lambda s: bool(s["stages"][2]["refusals"]))
    assert refused["stages"][2]["refusals"][0]["via"] == "pull_request"  # type: ignore[index]
    assert refused["stages"][2]["state"] == "awaiting_approval"  # type: ignore[index]
    page.reload()
    link_in_details(page)
    assert "Refused: mallory via pull_request: mallory may not decide prod" in details_text(page)
    shot(page, "8-refused-review-in-the-details")

    # bob is a release manager, but the local forge authenticates nobody and prod requires signed
    # approvals: his review is refused and says how to sign; he signs through the CLI
    review("bob", "lgtm from the forge")
    refused = cli.wait_status("promote-demo", lambda s: len(s["stages"][2]["refusals"]) == 2)
    assert "does not authenticate its reviewers" in refused["stages"][2]["refusals"][1]["reason"]  # type: ignore[index]
    key = str(cli.state_dir / "keys" / "bob")
    signed = cli("approve", "promote-demo", "--env", "prod", "--as", "bob", "--sign-key", key)
    assert signed.returncode == 0, signed.stderr
    final = cli.wait_status("promote-demo", lambda s: s["state"] != "running", timeout_s=120)
    assert final["state"] == "succeeded", final["message"]
    approvals = final["stages"][2]["approvals"]  # type: ignore[index]
    assert [(a["approver"], a["via"], a["proof"]) for a in approvals] == [("bob", "cli", "signed")]
    pr.reload()
    pr.get_by_text("merged", exact=True).first.wait_for(state="visible", timeout=10000)
    shot(pr, "9-forge-pr-merged")

    # the completed promotion's details say so, name the approver, and nothing is left pending
    page.reload()
    link_in_details(page)
    text = details_text(page)
    assert "succeeded" in text and "approved by bob via cli (signed)" in text, text
    deadline = time.monotonic() + 60  # the summary is drawn after the details, and the server's count may lag
    while True:
        page.get_by_text("Pending Activities").first.wait_for(state="visible", timeout=30000)
        if re.search(r"Pending Activities\s*0\b", page.inner_text("body")):
            break
        if time.monotonic() > deadline:
            shot(page, "10-pending-activity")
        assert time.monotonic() < deadline, "a pending activity outlived the promotion"
        page.reload()
    shot(page, "10-completed-details")
    pr.close()
    page.close()
