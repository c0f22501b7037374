"""The console's web server (aiohttp, which discord.py already brings): one page, JSON
endpoints it polls, pictures, and the operator actions.

    GET  /                          the page (console/static/)
    GET  /api/fleet                 workers, queue, dead letters, traffic, retrain jobs
    GET  /api/models                versions, states, scores, configs, promotions
    GET  /api/models/{v}/sheet/{label}   the contact sheet PNG (202 JSON while it is drawn)
    GET  /api/models/{v}/files/{name}    samples.png / curves.png published with v
    GET  /api/jobs/{id}             a retrain job's curves so far
    GET  /api/jobs/{id}/uploads.png the job's imported images
    GET  /api/actions               the console's action log
    GET  /api/whoami                the operator a token belongs to
    POST /api/models/{v}/promote    {"force": bool}        } token required:
    POST /api/models/{v}/discard                           } Authorization: Bearer <token>
    POST /api/rollback                                     }
    POST /api/retrain               multipart: upload, from_version, labels

Reading needs no token (bind it to localhost, the default); every change does. Errors
are JSON `{"error": "..."}` with a status (401 no or bad token, 404 unknown version or
job, 400 a refused request), never a traceback.
"""

import asyncio
import contextlib
import logging
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from console.actions import Actions, NotAllowed, operator_for
from console.fleet import FleetWatcher
from console.jobs import job_curves, job_dir, upload_sheet
from console.models import SHOWN_FILES, models_view
from console.sheets import SheetMaker
from moodmoji.errors import MoodmojiError
from worker import LABELS, RedisStreamsTransport, RegistryError, registry_from_settings
from worker.retraining import RetrainQueue

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
UPLOAD_FIELD_BYTES = 1024  # the form's other fields


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every failure answered as JSON with a plain message."""
    try:
        return await handler(request)
    except NotAllowed as error:
        return _error(401, str(error))
    except RegistryError as error:
        status = 404 if str(error).startswith("no version") else 400
        return _error(status, str(error))
    except MoodmojiError as error:
        return _error(400, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(error.status, error.reason)
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        return _error(500, "internal error; the console's log has the details")


def _operator(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else None
    return operator_for(token, request.app["settings"].console_operators)


async def _json_body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise MoodmojiError("the request body is not JSON") from None
    return body if isinstance(body, dict) else {}


# --- reading ------------------------------------------------------------------------


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def config(request: web.Request) -> web.Response:
    settings = request.app["settings"]
    return web.json_response(
        {
            "poll_s": settings.console_poll_s,
            "read_only": not settings.console_operators,
            "history_s": settings.console_history_s,
            "sheet_samples": settings.console_sheet_samples,
        }
    )


async def fleet(request: web.Request) -> web.Response:
    return web.json_response(request.app["watcher"].snapshot())


async def models(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(models_view, request.app["registry"]))


async def sheet(request: web.Request) -> web.StreamResponse:
    version, label = request.match_info["version"], request.match_info["label"]
    if label not in LABELS:  # a label names a checkpoint file: nothing else may reach it
        raise web.HTTPNotFound(reason=f"{label!r} is not a label ({', '.join(LABELS)})")
    path, state = await request.app["sheets"].sheet(version, label)
    if path is None:
        status = 202 if state == "drawing" else 500
        return web.json_response({"state": state}, status=status)
    return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


async def version_file(request: web.Request) -> web.StreamResponse:
    version, name = request.match_info["version"], request.match_info["name"]
    if name not in SHOWN_FILES:
        raise web.HTTPNotFound(reason=f"{name!r} is not a picture a version publishes")
    path = request.app["registry"].version_dir(version) / name
    if not path.is_file():
        raise web.HTTPNotFound(reason=f"version {version!r} has no {name}")
    return web.FileResponse(path)


def _job_folder(request: web.Request) -> Path:
    try:
        return job_dir(request.app["settings"], request.match_info["job"])
    except ValueError as error:
        raise web.HTTPNotFound(reason=str(error)) from None


async def job(request: web.Request) -> web.Response:
    _job_folder(request)
    settings = request.app["settings"]
    return web.json_response(
        await asyncio.to_thread(job_curves, settings, request.match_info["job"])
    )


async def job_uploads(request: web.Request) -> web.Response:
    _job_folder(request)
    png = await asyncio.to_thread(upload_sheet, request.app["settings"], request.match_info["job"])
    if png is None:
        raise web.HTTPNotFound(reason="this job's upload is not imported (yet)")
    return web.Response(body=png, content_type="image/png")


async def actions_log(request: web.Request) -> web.Response:
    return web.json_response(await request.app["actions"].recent())


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"operator": _operator(request)})


# --- changing -----------------------------------------------------------------------


def _answer(entry: dict) -> web.Response:
    return web.json_response(entry, status=200 if entry["ok"] else 409)


async def promote(request: web.Request) -> web.Response:
    by = _operator(request)
    body = await _json_body(request)
    version = request.match_info["version"]
    return _answer(await request.app["actions"].promote(version, bool(body.get("force")), by))


async def rollback(request: web.Request) -> web.Response:
    by = _operator(request)
    return _answer(await request.app["actions"].rollback(by))


async def discard(request: web.Request) -> web.Response:
    by = _operator(request)
    return _answer(await request.app["actions"].discard(request.match_info["version"], by))


async def retrain(request: web.Request) -> web.Response:
    by = _operator(request)
    settings = request.app["settings"]
    fields, upload = {}, None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if part.name == "upload":
            upload = await part.read()
            if len(upload) > settings.retrain_max_upload_bytes:
                raise MoodmojiError(
                    f"the upload is {len(upload)} bytes; at most "
                    f"{settings.retrain_max_upload_bytes} are accepted"
                )
        else:
            value = await part.read_chunk(UPLOAD_FIELD_BYTES)  # a short field: a name, a label
            fields.setdefault(part.name, []).append(value.decode(errors="replace"))
    if not upload:
        raise MoodmojiError("attach a .zip with positive/ and negative/ folders of images")
    labels = fields.get("labels") or []
    from_version = (fields.get("from_version") or [""])[0].strip() or None
    entry = await request.app["actions"].retrain(upload, by, from_version, labels)
    return _answer(entry)


# --- the application ----------------------------------------------------------------


async def _start(app: web.Application) -> None:
    settings = app["settings"]
    app["transport"] = RedisStreamsTransport(settings)
    app["retrain_queue"] = RetrainQueue(settings)
    app["http"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
    app["redis"] = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    app["actions"] = Actions(settings, app["registry"], app["retrain_queue"], app["redis"])
    app["sheets"] = SheetMaker(settings, app["registry"])
    app["watcher"] = FleetWatcher(settings, app["transport"], app["retrain_queue"], app["http"])
    app["watch"] = asyncio.create_task(app["watcher"].run())


async def _stop(app: web.Application) -> None:
    app["watch"].cancel()
    await asyncio.gather(app["watch"], return_exceptions=True)
    closers = (app["http"].close, app["transport"].close, app["retrain_queue"].close)
    for close in (*closers, app["redis"].aclose):
        with contextlib.suppress(Exception):  # a Redis already gone: nothing left to close
            await close()


def build_app(settings) -> web.Application:
    """The console for these ConsoleSettings; run it with `aiohttp.web.run_app`."""
    app = web.Application(
        middlewares=[json_errors], client_max_size=settings.retrain_max_upload_bytes + 65536
    )
    app["settings"] = settings
    app["registry"] = registry_from_settings(settings)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/api/config", config)
    app.router.add_get("/api/fleet", fleet)
    app.router.add_get("/api/models", models)
    app.router.add_get("/api/models/{version}/sheet/{label}", sheet)
    app.router.add_get("/api/models/{version}/files/{name}", version_file)
    app.router.add_get("/api/jobs/{job}", job)
    app.router.add_get("/api/jobs/{job}/uploads.png", job_uploads)
    app.router.add_get("/api/actions", actions_log)
    app.router.add_get("/api/whoami", whoami)
    app.router.add_post("/api/models/{version}/promote", promote)
    app.router.add_post("/api/models/{version}/discard", discard)
    app.router.add_post("/api/rollback", rollback)
    app.router.add_post("/api/retrain", retrain)
    return app
