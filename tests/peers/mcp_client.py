"""An MCP client built on the official Python SDK (PyPI `mcp`), for the end-to-end tests.

Usage: mcp_client.py URL [--token-file F] STEP…
       mcp_client.py stdio STEP…   (the server command: the JSON list in MCP_STDIO_COMMAND, with
                                    the environment in MCP_STDIO_ENV, a JSON object)
Each STEP is one of
    list                       the tool names
    call NAME JSON_ARGS        a tools/call (the result's text, or the error)
    read URI                   a resources/read
    prompt NAME                a prompts/get
Prints one JSON object per step, one per line. A refused call prints {"error": …}.
"""
import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def text_of(result):
    out = []
    for c in getattr(result, "content", []) or []:
        if getattr(c, "type", None) == "text":
            out.append(c.text)
        else:
            out.append(json.dumps(c.model_dump(mode="json")))
    return "\n".join(out)


async def main():
    args = sys.argv[1:]
    url = args.pop(0)
    headers = {}
    if args and args[0] == "--token-file":
        args.pop(0)
        headers["Authorization"] = "Bearer " + open(args.pop(0)).read().strip()
    if url == "stdio":
        command = json.loads(os.environ["MCP_STDIO_COMMAND"])
        params = StdioServerParameters(
            command=command[0], args=command[1:], env=json.loads(os.environ.get("MCP_STDIO_ENV", "{}")))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await steps(session, args)
        return
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await steps(session, args)


async def steps(session, args):
    while args:
        step = args.pop(0)
        try:
            if step == "list":
                r = await session.list_tools()
                out = {"tools": sorted(t.name for t in r.tools)}
            elif step == "call":
                name, a = args.pop(0), json.loads(args.pop(0))
                r = await session.call_tool(name, a)
                out = {"text": text_of(r), "is_error": bool(r.is_error)}
            elif step == "read":
                r = await session.read_resource(args.pop(0))
                out = {"contents": [c.model_dump(mode="json") for c in r.contents]}
            elif step == "prompt":
                r = await session.get_prompt(args.pop(0))
                out = {"messages": len(r.messages)}
            else:
                raise SystemExit(f"unknown step {step}")
        except Exception as e:  # a JSON-RPC error from hoopguard or the server
            out = {"error": str(e), "code": getattr(getattr(e, "error", None), "code", None)}
        print(json.dumps(out), flush=True)


asyncio.run(main())
