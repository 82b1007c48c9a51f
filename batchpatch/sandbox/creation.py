"""Creating and deleting profiles, on the Adobe-style API and on the plain REST one.

- `POST /{org}/campaign/{api}/{resource}`: the body is checked as a PATCH's is (read-only and
  unknown fields answer Adobe's 500s; data policies and types applied, see schema.py); the
  profile gets a new PKey `@new-<hex>`; answer `201 {"PKey", "href"}`, `Location: href`.
- `POST /rest/profiles`: the key is the body's `id` if it has one (409 if taken), else a new
  `@new-<hex>`; unknown fields answer 422; answer 201 with the created resource and
  `Location: <url of /rest/profiles/KEY>`.
- `DELETE` on a profile of either API: `200 {}` when deleted; an absent or malformed key
  answers as a GET of it would (Adobe: the flavour's 404 or 500; REST: 404).
The stats list `created` and `deleted` PKeys in order; `ignore_fields` are not stored.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .replies import json_response
from .schema import Refused, conform

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["Lifecycle", "new_pkey"]


def new_pkey() -> str:
    return "@new-" + secrets.token_hex(8)


class Lifecycle:
    """The creation and deletion handlers, over the sandbox's state and checks."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def create_profile(self, request: web.Request) -> web.Response:
        sandbox = self.sandbox
        if (bad := sandbox.check_org(request)) is not None:
            return bad
        body, problem = await sandbox.read_body(request)
        if problem is not None:
            return problem
        body, problem = sandbox.vet(body)
        if problem is not None:
            return problem
        pkey = new_pkey()
        self._add(pkey, body)
        href = sandbox.href(request, pkey)
        return json_response({"PKey": pkey, "href": href}, 201, {"Location": href})

    async def delete_profile(self, request: web.Request) -> web.Response:
        sandbox = self.sandbox
        if (bad := sandbox.check_org(request)) is not None:
            return bad
        profile, problem = sandbox.find(request.match_info["pkey"])
        if problem is not None:
            return problem
        assert profile is not None
        self._remove(str(profile["PKey"]))
        return json_response({})

    async def rest_create(self, request: web.Request) -> web.Response:
        sandbox = self.sandbox
        body, problem = await sandbox.read_body(request)
        if problem is not None:
            return problem
        unknown = [name for name in body if name != "id" and not sandbox.known(name)]
        if unknown:
            return json_response({"error": f"unknown field {unknown[0]}"}, 422)
        try:
            body = conform(sandbox.content(), body)
        except Refused as refused:
            return json_response({"error": str(refused)}, 422)
        key = str(body["id"]) if body.get("id") not in (None, "") else new_pkey()
        if key in sandbox.state.profiles:
            return json_response({"error": f"{key} already exists"}, 409)
        profile = self._add(key, body)
        return json_response(profile, 201,
                             {"Location": f"{request.url.origin()}/rest/profiles/{key}"})

    async def rest_delete(self, request: web.Request) -> web.Response:
        pkey = request.match_info["pkey"]
        if pkey not in self.sandbox.state.profiles:
            return json_response({"error": "not found"}, 404)
        self._remove(pkey)
        return json_response({})

    def _add(self, pkey: str, body: dict[str, Any]) -> dict[str, Any]:
        profile: dict[str, Any] = {"PKey": pkey}
        self.sandbox.store(profile, body)
        profile["PKey"] = pkey
        self.sandbox.state.profiles[pkey] = profile
        self.sandbox.state.created.append(pkey)
        return profile

    def _remove(self, pkey: str) -> None:
        del self.sandbox.state.profiles[pkey]
        self.sandbox.state.deleted.append(pkey)
