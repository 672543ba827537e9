#!/usr/bin/env python3
"""Checks that the provider wire shapes Airlock's tests use are the vendors', not ours.

Installs the official SDKs (anthropic, openai, google-genai) from PyPI into a venv under the
cargo target directory, then validates with the SDKs' own pydantic types:

1. every response fixture the adapter tests serve (crates/airlock-providers/tests/fixtures/);
2. the shared wire-format fixtures (../shared/fixtures/providers/), each with the type of what it
   is: responses, requests, follow-up turns and tool results;
3. the request bodies Airlock itself sends: the adapter tests are run with
   AIRLOCK_DUMP_PROVIDER_REQUESTS set, and every dumped request is validated against the SDKs'
   request parameter types (skip with --no-requests).

Exit status 0 when everything validates, 1 otherwise. The last line is "N passed, N failed".
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import venv

# Pinned so a check does not change under us; bump deliberately after reading the changelogs.
SDKS = ["anthropic==2.12.0", "openai==3.54.0", "google-genai==3.4.0"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVED = ROOT / "crates" / "airlock-providers" / "tests" / "fixtures"


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve()


def ensure_venv() -> None:
    """Re-executes this script inside the SDK venv, creating it when needed."""
    env_dir = target_dir() / "provider-sdks-venv"
    python = env_dir / "bin" / "python"
    if pathlib.Path(sys.prefix).resolve() == env_dir:
        return
    stamp = env_dir / "sdks.txt"
    if not python.exists() or not stamp.exists() or stamp.read_text() != "\n".join(SDKS):
        print(f"check_provider_fixtures: installing {', '.join(SDKS)} into {env_dir}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=python.exists()).create(env_dir)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *SDKS],
            check=True,
        )
        stamp.write_text("\n".join(SDKS))
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def force(value):
    """Pydantic validates `Iterable[...]` fields lazily; walk everything so errors surface."""
    if type(value).__name__ == "ValidatorIterator":
        return [force(v) for v in value]
    if isinstance(value, dict):
        return {k: force(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [force(v) for v in value]
    return value


class Checker:
    def __init__(self):
        from pydantic import TypeAdapter
        from anthropic.types.beta import BetaMessage, BetaMessageParam, BetaToolResultBlockParam
        from anthropic.types.beta import message_create_params as anthropic_create
        from openai.types.chat import ChatCompletion
        from openai.types.chat import completion_create_params as chat_create
        from openai.types.responses import Response, ResponseOutputItem
        from openai.types.responses import response_create_params as responses_create
        from google.genai import types as gtypes

        def model(cls):
            return lambda doc: cls.model_validate(doc)

        def typed(tp):
            adapter = TypeAdapter(tp)
            return lambda doc: force(adapter.validate_python(doc))

        self.gtypes = gtypes
        self.kinds = {
            "anthropic.BetaMessage": model(BetaMessage),
            "anthropic.MessageCreateParams": typed(anthropic_create.MessageCreateParamsNonStreaming),
            "anthropic.BetaMessageParam": typed(BetaMessageParam),
            "anthropic.BetaToolResultBlockParam": typed(BetaToolResultBlockParam),
            "openai.Response": model(Response),
            "openai.ResponseOutputItem": typed(ResponseOutputItem),
            "openai.ResponseCreateParams": typed(responses_create.ResponseCreateParamsNonStreaming),
            "openai.ChatCompletion": model(ChatCompletion),
            "openai.ChatCompletionCreateParams": typed(chat_create.CompletionCreateParamsNonStreaming),
            "genai.GenerateContentResponse": model(gtypes.GenerateContentResponse),
            "genai.Content": model(gtypes.Content),
            "genai.GenerateContentRequest": self.gemini_request,
        }
        self.passed = 0
        self.failed = 0
        self.warnings = 0

    def gemini_request(self, doc):
        """The REST request has no single SDK type: validate its parts with theirs."""
        g = self.gtypes
        unknown = set(doc) - {"contents", "tools", "systemInstruction", "system_instruction",
                              "generationConfig", "generation_config", "safetySettings", "toolConfig"}
        if unknown:
            raise ValueError(f"unknown request keys {sorted(unknown)}")
        for c in doc.get("contents", []):
            g.Content.model_validate(c)
        for t in doc.get("tools", []):
            g.Tool.model_validate(t)
        si = doc.get("systemInstruction") or doc.get("system_instruction")
        if si is not None:
            g.Content.model_validate(si)
        gc = doc.get("generationConfig") or doc.get("generation_config")
        if gc is not None:
            g.GenerationConfig.model_validate(gc)

    def check(self, label, kind, doc):
        try:
            self.kinds[kind](doc)
        except Exception as e:  # noqa: BLE001 - report any validation failure
            self.failed += 1
            print(f"FAIL {label} as {kind}: {str(e)[:1500]}")
            return False
        self.passed += 1
        print(f"ok   {label} as {kind}")
        return True

    def warn(self, label, message):
        self.warnings += 1
        print(f"warn {label}: {message}")


def documents(path):
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        return [(f"{path.name}[{i}]", d) for i, d in enumerate(doc)]
    return [(path.name, doc)]


SERVED_KINDS = {
    "anthropic": "anthropic.BetaMessage",
    "openai": "openai.Response",
    "gemini": "genai.GenerateContentResponse",
    "compat": "openai.ChatCompletion",
}

# Shared fixtures by file-name prefix.
SHARED_KINDS = {
    "1-7a": "anthropic.MessageCreateParams",
    "1-7b": "anthropic.BetaMessage",
    "1-7c": "anthropic.BetaMessageParam",
    "1-7d": "anthropic.BetaToolResultBlockParam",
    "1-7e": "anthropic.MessageCreateParams",
    "1-7f": "anthropic.BetaMessage",
    "1-7g": "anthropic.BetaMessageParam",
    "2-4a": "openai.ResponseCreateParams",
    "2-4b": "openai.Response",
    "2-4c": "openai.ResponseCreateParams",
    "2-4d": "openai.Response",
    "2-4e": "openai.ResponseCreateParams",
    "2-4f": "openai.Response",
    "2-4g": "openai.ResponseCreateParams",
    "3-7a": "genai.GenerateContentRequest",
    "3-7b": "genai.GenerateContentResponse",
    "3-7c": "genai.Content",
    "3-7d": "genai.GenerateContentRequest",
    "3-7e": "genai.GenerateContentResponse",
    "3-7f": "genai.Content",
}


def check_served(c):
    for vendor, kind in SERVED_KINDS.items():
        files = sorted((SERVED / vendor).glob("*.json"))
        if not files:
            c.failed += 1
            print(f"FAIL no served fixtures in {SERVED / vendor}")
        for f in files:
            for label, doc in documents(f):
                c.check(f"{vendor}/{label}", kind, doc)


def check_shared(c, shared):
    if not shared.is_dir():
        c.warn(str(shared), "no shared fixtures found; skipped")
        return
    for f in sorted(shared.glob("*.json")):
        kind = SHARED_KINDS.get(f.name[:4])
        if kind is None:
            # The Interactions API (3-7g) has no public pydantic type in google-genai.
            c.warn(f"shared/{f.name}", "no SDK type for this fixture; skipped")
            continue
        doc = json.loads(f.read_text())
        if kind == "openai.Response":
            # Some shared responses omit envelope fields the SDK requires (created_at, tools,
            # ...). Validate the envelope as a note, and each output item strictly.
            try:
                c.kinds[kind](doc)
                c.passed += 1
                print(f"ok   shared/{f.name} as {kind}")
            except Exception as e:  # noqa: BLE001
                missing = sorted({".".join(map(str, err["loc"])) for err in e.errors()}) if hasattr(e, "errors") else [str(e)[:200]]
                c.warn(f"shared/{f.name}", f"incomplete Response envelope (missing or invalid: {', '.join(missing)}); checking its items")
                for i, item in enumerate(doc.get("output", [])):
                    c.check(f"shared/{f.name} output[{i}]", "openai.ResponseOutputItem", item)
            continue
        c.check(f"shared/{f.name}", kind, doc)


def check_requests(c):
    out = target_dir() / "provider-requests"
    if out.exists():
        for old in out.glob("*.json"):
            old.unlink()
    env = dict(os.environ, AIRLOCK_DUMP_PROVIDER_REQUESTS=str(out))
    print("check_provider_fixtures: running the adapter tests to capture Airlock's requests", file=sys.stderr)
    run = subprocess.run(
        ["cargo", "test", "--locked", "-q", "-p", "airlock-providers", "--test", "adapters"],
        cwd=ROOT, env=env,
    )
    if run.returncode != 0:
        c.failed += 1
        print("FAIL the adapter tests failed; requests not checked")
        return
    files = sorted(out.glob("*.json"))
    if not files:
        c.failed += 1
        print(f"FAIL no requests were dumped into {out}")
    kinds = {
        "anthropic": "anthropic.MessageCreateParams",
        "openai": "openai.ResponseCreateParams",
        "gemini": "genai.GenerateContentRequest",
        "compat": "openai.ChatCompletionCreateParams",
    }
    for f in files:
        vendor = f.name.split("-", 1)[0]
        c.check(f"request {f.name}", kinds[vendor], json.loads(f.read_text()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("AIRLOCK_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures" / "providers")),
                        help="the shared wire-format fixtures")
    parser.add_argument("--no-requests", action="store_true", help="do not run the adapter tests to check Airlock's own requests")
    args = parser.parse_args()
    ensure_venv()
    c = Checker()
    check_served(c)
    check_shared(c, args.shared)
    if not args.no_requests:
        check_requests(c)
    print(f"{c.passed} passed, {c.failed} failed" + (f", {c.warnings} skipped" if c.warnings else ""))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
