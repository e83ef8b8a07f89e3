"""W3 peer: a bare Starlette app with one JSON GET and one JSON POST, nothing else.

Run it the way the benchmark does: ``python -m benchmarks.peers.starlette_w3 --port 8001``
(one uvicorn worker, uvloop, httptools, access log off).
"""

from __future__ import annotations

import argparse
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def make_app() -> Starlette:
    balances: dict[str, int] = {}

    async def open_account(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        balances[body["account_id"]] = body.get("opening_balance", 0)
        return JSONResponse({"account_id": body["account_id"]}, status_code=201)

    async def get_account(request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        if account_id not in balances:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse({"account_id": account_id, "balance": balances[account_id]})

    async def deposit(request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        body = json.loads(await request.body())
        balances[account_id] = balances.get(account_id, 0) + body["amount"]
        return JSONResponse({"account_id": account_id, "balance": balances[account_id]})

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "live"})

    return Starlette(
        routes=[
            Route("/accounts", open_account, methods=["POST"]),
            Route("/accounts/{account_id}", get_account, methods=["GET"]),
            Route("/accounts/{account_id}/deposits", deposit, methods=["POST"]),
            Route("/livez", livez, methods=["GET"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        make_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
