"""The openai judge backend against a small OpenAI-compatible server on 127.0.0.1."""

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from moalign.rubric.judges import JudgeError, judge_pair, make_judge
from moalign.rubric.llm import extract_json, parse_reply
from moalign.rubric.schema import load_meta_rubric
from tests.rubric.helpers import META

GOOD = json.dumps({"question_analysis": {"primary_need": "sum"},
                   "rubric_compares": [{"name": "brevity", "tier": "important", "chosen": "A", "score": 2},
                                       {"name": "format", "tier": "core", "chosen": "S", "score": 0}]})


class Server:
    def __init__(self, replies):
        self.replies, self.calls, self.auth, self.prompts = list(replies), 0, [], []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers["Content-Length"])
                req = json.loads(self.rfile.read(n))
                outer.prompts.append(req["messages"][-1]["content"])
                assert self.path == "/v1/chat/completions"
                outer.calls += 1
                outer.auth.append(self.headers.get("Authorization"))
                text = outer.replies[min(outer.calls - 1, len(outer.replies) - 1)]
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("MOALIGN_JUDGE_MODEL", "judge-model")
    monkeypatch.setenv("MOALIGN_JUDGE_API_KEY", "sk-secret")


def judge_for(url, retries=2):
    return make_judge("openai", base_url=url, retries=retries, backoff=0.01, timeout=5)


def test_valid_json_and_aggregation(env):
    s = Server([GOOD])
    try:
        rubric = load_meta_rubric(META)
        out = judge_pair(judge_for(s.url), "q", "short \\boxed{5}", "long \\boxed{5}", rubric, "5")
        assert out["score_ab"] == pytest.approx(2.0) and out["criteria"][0]["name"] == "brevity"
        assert s.calls == 2 and s.auth[0] == "Bearer sk-secret"  # both orders
        assert "correctness" in s.prompts[0] and "Reference answer (verified): 5" in s.prompts[0]
        assert out["verdict"] == "tie"  # the fake judge favours A in both orders: position bias -> tie
    finally:
        s.close()


def test_garbage_then_valid_is_retried(env):
    s = Server(["I think A is better!", "```json\n" + GOOD + "\n```"])
    try:
        res = judge_for(s.url).judge("q", "a", "b", load_meta_rubric(META))
        assert s.calls == 2 and res[0].score == 2
    finally:
        s.close()


def test_always_garbage_bounded_then_clear_error(env):
    s = Server(["nope"])
    try:
        with pytest.raises(JudgeError, match="after 3 attempts"):
            judge_for(s.url, retries=2).judge("q", "a", "b", load_meta_rubric(META))
        assert s.calls == 3
    finally:
        s.close()


def test_endpoint_down(env):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    j = judge_for(f"http://127.0.0.1:{port}/v1", retries=1)
    with pytest.raises(JudgeError, match="after 2 attempts.*Connection") as e:
        j.judge("q", "a", "b", load_meta_rubric(META))
    assert "sk-secret" not in str(e.value) and "sk-secret" not in repr(j) and j.calls == 2


def test_missing_configuration(monkeypatch):
    monkeypatch.delenv("MOALIGN_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("MOALIGN_JUDGE_MODEL", raising=False)
    with pytest.raises(JudgeError, match="MOALIGN_JUDGE_BASE_URL"):
        make_judge("openai")


def test_hf_judge_missing_model():
    with pytest.raises(JudgeError, match="judge_model"):
        make_judge("hf")
    with pytest.raises(JudgeError, match="could not be loaded"):
        make_judge("hf", model="/nonexistent/judge")


def test_key_never_logged(env, caplog):
    s = Server(["nope"])
    try:
        with caplog.at_level("DEBUG"), pytest.raises(JudgeError):
            judge_for(s.url, retries=1).judge("q", "a", "b", load_meta_rubric(META))
        assert "sk-secret" not in caplog.text
    finally:
        s.close()


def test_parse_and_repair():
    assert extract_json('Sure!\n```json\n{"a": [1, {"b": 2}]}\n``` hope it helps {x}') == {"a": [1, {"b": 2}]}
    res = parse_reply('[{"name": "x", "tier": "Core", "chosen": "b", "score": 2}]')
    assert res[0].tier == "core" and res[0].signed == -2
    for bad in ("no json", '{"rubric_compares": []}', '[{"tier": "vital", "score": 1}]'):
        with pytest.raises(ValueError):
            parse_reply(bad)


def _reply(**crit):
    c = {"name": "brevity", "tier": "important", "chosen": "A", "score": 2, "reason": "r"}
    c.update(crit)
    return json.dumps({"question_analysis": {"primary_need": "sum"},
                       "rubric_compares": [{k: v for k, v in c.items() if v is not ...}]})


@pytest.mark.parametrize("bad", [
    _reply(score=...),  # missing score
    _reply(chosen="A wins"),
    _reply(score=99),
    _reply(score=-3),
    _reply(score=1.5),
    _reply(score="high"),
    _reply(score=True),
    _reply(chosen=...),  # missing chosen
    _reply(name=...),  # missing name
    _reply(tier=...),  # missing tier
    _reply(confidence=0.9),  # unknown field
    json.dumps({"rubric_compares": [{"name": "x", "tier": "core", "chosen": "A", "score": 1}], "verdict": "A"}),
])
def test_strict_schema_rejects(bad):
    with pytest.raises(ValueError):
        parse_reply(bad)


def test_strict_schema_accepts_aliases_and_case():
    res = parse_reply(_reply(chosen="s", score="1"))
    assert res[0].chosen == "tie" and res[0].score == 0
    res = parse_reply(json.dumps([{"rubric_name": "x", "type": "Fatal", "chosen": "b", "score": -2.0}]))
    assert res[0].name == "x" and res[0].tier == "fatal" and res[0].signed == -2


@pytest.mark.parametrize("bad", [_reply(score=...), _reply(chosen="A wins"), _reply(score=99)])
def test_schema_violation_is_retried_then_used(env, bad):
    s = Server([bad, GOOD])
    try:
        res = judge_for(s.url).judge("q", "a", "b", load_meta_rubric(META))
        assert s.calls == 2 and res[0].score == 2
    finally:
        s.close()


def test_schema_violation_always_then_clear_error(env):
    s = Server([_reply(score=99)])
    try:
        with pytest.raises(JudgeError, match="after 2 attempts.*-2..2.*Fix"):
            judge_for(s.url, retries=1).judge("q", "a", "b", load_meta_rubric(META))
        assert s.calls == 2
    finally:
        s.close()


def test_no_per_request_info_logging(env, caplog):
    s = Server([GOOD])
    try:
        with caplog.at_level("INFO"):
            judge_for(s.url).judge("q", "a", "b", load_meta_rubric(META))
        assert s.calls == 1
        assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore", "openai"))
                    and r.levelno < logging.WARNING]
    finally:
        s.close()
