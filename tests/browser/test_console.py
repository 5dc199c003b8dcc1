"""The web console in a real browser (docs/console.md): headless Chromium, the embedded default.

Every turn goes from the page to the console's API, is signed there by the dev CA, sent
over loopback to the public listener, verified, answered by a real function process,
and shown; the fixtures fail a test on any console error of the page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from funker_dispatch.devtools.conversation import script_lines
from skill.settings import DEVELOPMENT_EVENTBRIDGE_API_KEY
from tests.browser.conftest import CHROMIUM, NO_BROWSER, Embedded, launch, open_page
from tests.e2e.conftest import trusted_config
from tests.helpers import wait_until

# One module, one skip line saying how to get a browser, where there is none.
if not CHROMIUM.exists():
    pytest.skip(NO_BROWSER, allow_module_level=True)
expect = pytest.importorskip("playwright.sync_api", reason=NO_BROWSER).expect

# spacecount takes 2 s in the embedded default (so "One moment." is heard): room for it.
expect.set_options(timeout=15_000)

TURNS = "li.turn:not(.pending)"


def say(page: Any, utterance: str) -> None:
    page.fill("#utterance", utterance)
    page.click("#say button[type=submit]")


def send_intent(page: Any, intent: str, **slots: str) -> None:
    """Pick `intent` in the intent form, fill its slots and send it."""
    page.click(".intent-box summary")
    page.select_option("#intent-form select[name=intent]", intent)
    for name, value in slots.items():
        page.fill(f"#intent-form input[data-slot={name}]", value)
    page.click("#intent-form button[type=submit]")


def turn(page: Any, count: int) -> Any:
    """The `count`-th finished turn (from 1), once it is there."""
    turns = page.locator(TURNS)
    expect(turns).to_have_count(count)
    return turns.nth(count - 1)


def sent(item: Any) -> dict[str, Any]:
    """The request a turn sent, as the page shows it (the exact bytes signed)."""
    return json.loads(item.locator("textarea.request-body").input_value())


def field(item: Any, name: str) -> Any:
    return item.locator(f"[data-part=trace] [data-field={name}] dd")


def log_record(server: Embedded, request_id: str) -> dict[str, Any]:
    wait_until(lambda: f'"request_id":"{request_id}"' in server.log(), 30, "the request log line")
    line = next(line for line in server.log().splitlines() if request_id in line and "{" in line)
    return json.loads(line[line.index("{") :])


# --- the page ---------------------------------------------------------------------------


def test_the_embedded_banner_names_the_console(embedded):
    assert f"console       {embedded.console}" in embedded.log()


def test_the_page_loads_with_no_console_errors(console):
    expect(console.locator("#locale option")).to_have_count(2)
    expect(console.locator("#endpoint")).to_contain_text("amzn1.ask.skill.00000000")
    expect(
        console.locator("#suggestions option[value='how many people are in space']")
    ).to_have_count(1)
    expect(console.locator("#suggestions option[value='say hello to Ada']")).to_have_count(1)
    expect(console.locator("#intent-form select[name=intent] option")).not_to_have_count(0)
    # The fixture fails the test on any console error when the page closes.


def test_an_utterance_shows_the_spoken_answer_the_card_and_the_progressive_response(console):
    say(console, "how many people are in space")
    item = turn(console, 1)
    expect(item.locator("[data-part=understood]")).to_contain_text(
        "IntentRequest · SpaceCountIntent"
    )
    expect(item.locator("[data-part=speech]")).to_contain_text("people in space right now")
    expect(item.locator("[data-part=card]")).to_contain_text("People in space")
    expect(item.locator("[data-part=card]")).to_contain_text("ISS:")
    # spacecount takes 2 s, past progressive_after (1.5 s): the server said "One moment." first.
    expect(item.locator("[data-part=progressive]")).to_contain_text("One moment.")
    expect(item.locator("[data-part=session-end]")).to_have_text("session ended by the skill")


def test_the_trace_is_the_servers_own_record_naming_the_spacecount_route(console, embedded):
    say(console, "how many people are in space")
    item = turn(console, 1)
    expect(field(item, "route")).to_have_text("SpaceCountIntent")
    logged = log_record(embedded, sent(item)["request"]["requestId"])
    assert logged["route"] == "SpaceCountIntent"
    expect(field(item, "function")).to_have_text(logged["function"])
    assert logged["function"].startswith("127.0.0.1:")
    expect(field(item, "outcome")).to_have_text("ok")
    expect(field(item, "reason")).to_have_text("–")
    for name in ("verify_ms", "function_ms", "total_ms"):
        shown = field(item, name).inner_text().removesuffix(" ms")
        assert float(shown) == logged[name], name


def test_a_hello_dialog_keeps_the_session_and_its_attributes(console):
    say(console, "say hello")
    first = turn(console, 1)
    expect(first.locator("[data-part=speech]")).to_contain_text("Who should I say hello to?")
    expect(first.locator("[data-part=session-end]")).to_have_text("session stays open")
    expect(first.locator("[data-part=reprompt]")).to_have_text(
        "reprompt: Who should I say hello to?"
    )
    expect(console.locator("[data-part=attributes]")).to_contain_text('"asked_name": true')
    say(console, "it's Ada")
    second = turn(console, 2)
    expect(second.locator("[data-part=speech]")).to_contain_text("Hello, Ada!")
    expect(second.locator("[data-part=reprompt]")).to_have_count(0)  # the session ended
    expect(second.locator("[data-part=slot]")).to_contain_text("name = “Ada” → Ada (id ADA)")
    expect(second.locator("[data-part=slot]")).to_contain_text("ER_SUCCESS_MATCH")
    before, after = sent(first)["session"], sent(second)["session"]
    assert before["new"] is True and after["new"] is False
    assert after["sessionId"] == before["sessionId"]
    assert after["attributes"] == {"asked_name": True}


def test_launch_end_and_new_session(console):
    console.click("#launch")
    launched = turn(console, 1)
    expect(launched.locator("[data-part=understood]")).to_contain_text("LaunchRequest")
    expect(launched.locator("[data-part=speech]")).to_contain_text("Welcome to Funker Dispatch")
    console.click("#end")
    ended = turn(console, 2)
    expect(ended.locator("[data-part=understood]")).to_contain_text("SessionEndedRequest")
    expect(ended.locator("[data-part=session-end]")).to_have_text("session ended")
    assert sent(ended)["session"]["sessionId"] == sent(launched)["session"]["sessionId"]
    console.click("#launch")
    again = turn(console, 3)
    assert sent(again)["session"]["sessionId"] != sent(launched)["session"]["sessionId"]
    console.click("#new-session")
    expect(console.locator("#session-state")).to_contain_text("No session open")


def test_the_intent_form_sends_the_models_slots_with_entity_resolution(console):
    send_intent(console, "HelloIntent", name="Grace Hopper")
    item = turn(console, 1)
    expect(item.locator("[data-part=slot]")).to_contain_text("name = “Grace Hopper” → Grace")
    expect(item.locator("[data-part=speech]")).to_contain_text("Hello, Grace!")


def test_an_utterance_that_matches_nothing_is_the_fallback_with_the_nearest_samples(console):
    say(console, "sing me a song about whales")
    item = turn(console, 1)
    expect(item.locator("[data-part=understood]")).to_contain_text("AMAZON.FallbackIntent")
    expect(item.locator("[data-part=nearest]")).to_contain_text("no sample matched")
    expect(item.locator("[data-part=nearest] li")).to_have_count(3)


def test_a_slot_the_skill_asks_for_is_filled_by_the_next_utterance(console):
    # The page keeps the dialog between turns: "grace" answers the name the skill elicited.
    say(console, "say hello")
    expect(turn(console, 1).locator("[data-part=speech]")).to_contain_text("Who should I say")
    say(console, "grace")
    second = turn(console, 2)
    expect(second.locator("[data-part=understood]")).to_contain_text("HelloIntent")
    expect(second.locator("[data-part=speech]")).to_contain_text("Hello, Grace!")


def test_locales_come_from_the_model_and_a_switch_starts_a_session_in_it(console):
    console.select_option("#locale", "en-GB")
    expect(console.locator("#suggestions option[value='say hiya to Ada']")).to_have_count(1)
    say(console, "say hiya to Ada")
    item = turn(console, 1)
    expect(item.locator("[data-part=speech]")).to_contain_text("Hello, Ada!")
    assert sent(item)["request"]["locale"] == "en-GB"
    # Launch and the intent form speak the chosen locale too, not only typed utterances.
    console.click("#launch")
    assert sent(turn(console, 2))["request"]["locale"] == "en-GB"
    send_intent(console, "HelloIntent", name="Ada")
    formed = turn(console, 3)
    expect(formed.locator("[data-part=speech]")).to_contain_text("Hello, Ada!")
    assert sent(formed)["request"]["locale"] == "en-GB"


def test_the_page_and_a_turn_fetch_nothing_but_their_own_origin(browser, embedded):
    # Usable offline (docs/console.md): no CDN, no font or script from anywhere else.
    context = browser.new_context()
    fetched: list[str] = []
    context.on("request", lambda r: fetched.append(r.url))
    page = context.new_page()
    try:
        page.goto(embedded.console)
        page.locator("body[data-ready=true]").wait_for()
        say(page, "how many people are in space")
        expect(turn(page, 1).locator("[data-part=speech]")).to_contain_text("people in space")
    finally:
        context.close()
    assert any("/console/api/" in url for url in fetched)  # the listener saw the page work
    foreign = [url for url in fetched if not url.startswith(embedded.admin_url + "/")]
    assert foreign == []


# --- Skill I/O --------------------------------------------------------------------------


def test_an_edited_request_sent_as_is_is_refused_signature_and_re_signed_is_answered(console):
    say(console, "say hello to Grace")
    item = turn(console, 1)
    item.locator("details.io summary").click()
    item.locator("button.send-as-is").click()  # untouched: the bytes signed, still valid
    expect(turn(console, 2).locator("[data-part=speech]")).to_contain_text("Hello, Grace!")

    editor = item.locator("textarea.request-body")
    editor.fill(editor.input_value().replace('"Grace"', '"Linus"'))
    item.locator("button.send-as-is").click()
    refused = turn(console, 3)
    expect(refused.locator("[data-part=refusal]")).to_have_attribute("data-reason", "signature")
    expect(refused.locator("[data-part=refusal]")).to_contain_text("HTTP 400 signature")
    expect(field(refused, "outcome")).to_have_text("rejected")
    expect(field(refused, "route")).to_have_text("(refused before routing)")
    expect(field(refused, "reason")).to_have_text("signature")

    item.locator("button.resign").click()
    resigned = turn(console, 4)
    expect(resigned.locator("[data-part=speech]")).to_contain_text("Hello, Linus!")


def test_no_signing_key_reaches_the_page_or_its_api_answers(console, embedded):
    answers: list = []
    console.on("response", lambda r: answers.append(r) if "/console/api/" in r.url else None)
    say(console, "say hello to Grace")
    item = turn(console, 1)
    item.locator("details.io summary").click()
    item.locator("button.resign").click()  # signed again, server-side
    expect(turn(console, 2).locator("[data-part=speech]")).to_contain_text("Hello, Grace!")
    keys = sorted(embedded.home.rglob("*.key"))
    assert keys  # the development CA's keys are where this looks for them
    key_lines = [line for key in keys for line in key.read_text().splitlines()[1:-1]]
    texts = [console.content(), *(answer.text() for answer in answers)]
    assert len(texts) >= 3  # the page and at least both turns' answers
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in key_lines)


def test_request_and_response_download_as_json(console):
    say(console, "say hello to Ada")
    item = turn(console, 1)
    item.locator("details.io summary").click()
    with console.expect_download() as request_file:
        item.get_by_role("button", name="Download request").click()
    with console.expect_download() as response_file:
        item.get_by_role("button", name="Download response").click()
    request = json.loads(Path(request_file.value.path()).read_text())
    response = json.loads(Path(response_file.value.path()).read_text())
    assert request == sent(item)
    assert response["response"]["outputSpeech"]["text"] == "Hello, Ada!"


# --- test events ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rule", "summary"),
    [
        ("s3", "uploads", "HTTP 200: 1 rule"),
        ("cloudwatch", "alarms", "HTTP 200: 1 rule"),
        ("sns", None, "HTTP 200: no rule matched"),  # the embedded default has no sns rule
        ("eventbridge", "instances", "HTTP 200: 1 rule"),
        ("dynamodb", "orders", "HTTP 200: 1 rule"),
        ("github", "deploys", "HTTP 200: 1 rule"),
    ],
)
def test_each_test_event_kind_shows_its_rule_outcome(console, kind, rule, summary):
    console.click("nav.tabs button[data-tab=events]")
    console.click(f"#event-kinds button[data-kind={kind}]")
    console.click("#event-form button[type=submit]")
    expect(console.locator("[data-part=event-summary]")).to_have_text(summary)
    rows = console.locator("#event-result tbody tr")
    if rule is None:
        expect(rows).to_have_count(0)
        return
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(0)).to_have_text(rule)
    expect(rows.first.locator("td").nth(1)).to_have_text("ok")
    # The function's own answer, from the server's trace (the sender never gets it).
    expect(rows.first.locator("[data-part=function-answer]")).to_contain_text('{"remembered":')
    assert DEVELOPMENT_EVENTBRIDGE_API_KEY not in console.content()  # credentials stay out


def test_an_event_form_sends_what_it_says(console):
    console.click("nav.tabs button[data-tab=events]")
    console.click("#event-kinds button[data-kind=s3]")
    console.fill("#event-form input[name=key]", "holiday/red flower.jpg")
    console.fill("#event-form input[name=bucket]", "albums")
    console.click("#event-form button[type=submit]")
    expect(console.locator("#event-result")).to_contain_text("s3://albums/holiday/red flower.jpg")


# --- routes, certify --------------------------------------------------------------------


def test_the_routing_table_and_its_resolve_probes(console):
    console.click("nav.tabs button[data-tab=routes]")
    row = console.locator("#routes-table tbody tr", has_text="SpaceCountIntent")
    expect(row).to_contain_text("127.0.0.1")
    expect(row).to_contain_text("config")
    console.click("#routes-probe")
    expect(console.locator("#routes-table thead")).to_contain_text("resolves")
    expect(row.locator("td").nth(4)).to_have_text("yes")


def test_certify_against_this_endpoint_shows_its_table(console):
    console.click("nav.tabs button[data-tab=certify]")
    console.click("#certify-run")
    summary = console.locator("[data-part=certify-summary]")
    expect(summary).to_contain_text("pass")
    assert "fail" not in summary.inner_text()
    expect(console.locator("#certify-result tbody tr", has_text="tampered body")).to_contain_text(
        "pass"
    )
    assert "null" not in console.locator("#certify-result").inner_text()


def test_the_mcp_tab_lists_the_tools_and_a_call_shows_the_function_s_answer(console, embedded):
    console.click("nav.tabs button[data-tab=mcp]")
    hello = console.locator("#mcp-tools form[data-tool=HelloIntent]")
    expect(hello).to_contain_text("say hello to {name}")
    hello.locator("input[name=name]").fill("Amazing Grace")
    hello.locator("button[type=submit]").click()
    expect(hello.locator(".result")).to_contain_text("answered")
    expect(hello.locator(".mcp-speech")).to_have_text("Hello, Grace!")
    # The token stayed on the server's side: the page never saw it.
    assert "Bearer" not in console.content()


# --- dialog scripts ---------------------------------------------------------------------


def test_a_saved_session_replays_in_the_console_and_in_dialog(console, embedded, tmp_path):
    say(console, "say hello")
    turn(console, 1)
    say(console, "it's Ada")
    expect(turn(console, 2).locator("[data-part=speech]")).to_contain_text("Hello, Ada!")
    with console.expect_download() as saved:
        console.click("#save-script")
    script = tmp_path / "dialog.txt"
    Path(saved.value.path()).replace(script)
    assert script_lines(script) == ["say hello", "it's Ada"]

    console.set_input_files("#load-script", str(script))
    expect(turn(console, 4).locator("[data-part=speech]")).to_contain_text("Hello, Ada!")
    replayed = console.locator(TURNS).nth(2)
    expect(replayed.locator("[data-part=speech]")).to_contain_text("Who should I")

    env = {**os.environ, "FUNKER_DISPATCH_HOME": str(embedded.home)}
    env.pop("FUNKER_DISPATCH_CONFIG", None)
    played = subprocess.run(
        [
            sys.executable,
            "-m",
            "funker_dispatch",
            "dialog",
            "--url",
            f"{embedded.url}/",
            "--script",
            script,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr
    assert "Hello, Ada!" in played.stdout


# --- on a phone -------------------------------------------------------------------------


def test_a_phone_sized_viewport_needs_no_sideways_scrolling(browser, embedded):
    watched = open_page(browser, embedded.console, viewport={"width": 390, "height": 844})
    page = watched.page
    say(page, "say hello to Ada")
    item = turn(page, 1)
    item.locator("details.io summary").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("nav.tabs button[data-tab=certify]")
    page.click("#certify-run")
    expect(page.locator("[data-part=certify-summary]")).to_contain_text("pass")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.context.close()
    assert watched.errors == []


# --- SSML, Standard cards ---------------------------------------------------------------


@pytest.fixture(scope="module")
def short_answers(start_server, function_process, dev_ca):
    """A server whose HelloIntent answers SSML and a Standard card with images; the model's
    other intents go by the naming convention to hosts that do not resolve (deadline 1.5 s)."""
    port = function_process("short")
    base = trusted_config(dev_ca, dev_ca.path.parent) + "[console]\nenabled = true\n\n"
    route = f'[intents.HelloIntent]\nhost = "127.0.0.1"\nport = {port}\n'
    env = {"FUNKER_DISPATCH_HOME": str(dev_ca.path.parent), "FUNKER_DISPATCH_DEADLINE": "1.5"}
    return start_server(route, base=base, env=env)


SPOKEN_STUB = """
window.__spoken = [];
window.speechSynthesis.speak = (utterance) => window.__spoken.push(utterance.text);
"""


def test_play_speaks_the_text_without_ssml_and_a_standard_card_shows_its_image(
    browser, short_answers
):
    watched = open_page(browser, short_answers.admin_url + "/console", init_script=SPOKEN_STUB)
    page = watched.page
    say(page, "say hello")
    item = turn(page, 1)
    expect(item.locator("[data-part=speech] .spoken")).to_have_text("Hello there")
    item.locator("button.play").click()
    assert page.evaluate("window.__spoken") == ["Hello there"]
    card = item.locator("[data-part=card]")
    expect(card).to_have_attribute("data-type", "Standard")
    expect(card).to_contain_text("Standard card")
    image = card.locator("img")
    expect(image).to_have_attribute("src", "https://example.com/l.png")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 1  # the picture arrived and was drawn
    page.context.close()
    assert watched.errors == []


# --- the API's guards, against the real server ------------------------------------------


def api(
    server: Embedded, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.admin_url + path, data=body, headers=headers, method="POST" if body else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_api_refuses_no_token_a_foreign_origin_and_a_foreign_host(embedded):
    with urllib.request.urlopen(embedded.console, timeout=5) as page:
        html = page.read().decode()
    token = html.split('name="console-token" content="', 1)[1].split('"', 1)[0]
    own = embedded.admin_url.removeprefix("http://")
    launch = json.dumps({"action": "launch", "locale": "en-US"}).encode()
    good = {
        "Content-Type": "application/json",
        "Origin": embedded.admin_url,
        "X-Console-Token": token,
    }
    launches = embedded.log().count('"request_type":"LaunchRequest"')

    refused = [
        ({**good, "X-Console-Token": ""}, "csrf"),
        ({k: v for k, v in good.items() if k != "X-Console-Token"}, "csrf"),
        ({**good, "Origin": "http://evil.example"}, "origin"),
        ({**good, "Host": "evil.example:" + own.rsplit(":", 1)[1]}, "host"),
    ]
    for headers, error in refused:
        status, answer = api(embedded, "/console/api/turn", launch, headers)
        assert (status, answer["error"]) == (403, error), headers
    status, answer = api(embedded, "/console/api/turn", launch, {**good, "Host": own})
    assert status == 200 and answer["status"] == 200  # the same call, with the page's token
    wait_until(
        lambda: embedded.log().count('"request_type":"LaunchRequest"') == launches + 1,
        10,
        "the one launch that was let through",
    )


def test_a_page_on_a_rebound_name_gets_nothing_from_the_console(playwright, embedded):
    """DNS rebinding, for real: a name of the attacker's that resolves to 127.0.0.1."""
    port = embedded.admin_url.rsplit(":", 1)[1]
    browser = launch(playwright, "--host-resolver-rules=MAP rebound.example 127.0.0.1")
    try:
        page = browser.new_page()
        answer = page.goto(f"http://rebound.example:{port}/console")
        assert answer is not None and answer.status == 403
        assert "console-token" not in page.content()
    finally:
        browser.close()


# --- what a newcomer met ------------------------------------------------------------------


def test_an_unreachable_function_says_why_in_the_trace_not_only_in_the_server_log(
    browser, short_answers
):
    watched = open_page(browser, short_answers.admin_url + "/console")
    page = watched.page
    send_intent(page, "SpaceCountIntent")  # naming convention: a host called SpaceCountIntent
    item = turn(page, 1)
    expect(field(item, "reason")).to_have_text("unreachable")
    expect(field(item, "detail")).to_contain_text("cannot resolve SpaceCountIntent")
    page.context.close()
    assert watched.errors == []


def test_the_routes_tab_lists_every_intent_the_intent_menu_offers(browser, short_answers):
    watched = open_page(browser, short_answers.admin_url + "/console")
    page = watched.page
    offered = [
        o for o in page.locator("#intent-form select[name=intent] option").all_inner_texts() if o
    ]
    page.click("nav.tabs button[data-tab=routes]")
    rows = page.locator("#routes-table tbody tr")
    expect(rows.first).to_be_visible()
    listed = {row.locator("td").first.inner_text(): row.inner_text() for row in rows.all()}
    assert set(offered) <= set(listed), sorted(set(offered) - set(listed))
    assert "naming" in listed["SpaceCountIntent"] and "config" in listed["HelloIntent"]
    assert "built-in" in listed["AMAZON.HelpIntent"]
    page.context.close()
    assert watched.errors == []


def test_the_replay_script_button_shows_keyboard_focus(console):
    console.focus("#load-script")  # the file input inside the label a keyboard user reaches
    outline = console.locator("label.file-button").evaluate("l => getComputedStyle(l).outlineStyle")
    assert outline not in ("", "none")


def test_event_forms_label_their_fields_in_words_not_command_line_flags(console):
    console.click("nav.tabs button[data-tab=events]")
    for kind in ("s3", "cloudwatch", "sns", "eventbridge", "dynamodb", "github"):
        console.click(f"#event-kinds button[data-kind={kind}]")
        labels = console.locator("#event-form label").all_inner_texts()
        assert labels and not any(text.lstrip().startswith("--") for text in labels), labels
    console.click("#event-kinds button[data-kind=s3]")
    expect(console.locator("#event-form")).to_contain_text("Bucket")
