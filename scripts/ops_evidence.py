"""Operations evidence against a real Prefect server: UI screenshots, API dumps, worker masking.

    uv run --no-sync python scripts/ops_evidence.py --out docs/ops-evidence

1. Starts ``prefect server start`` on a free loopback port with a temporary ``PREFECT_HOME``.
2. Runs the demo's build-reminders -> push-waves -> collect-outcomes against the bundled
   Genesys sandbox with ``PREFECT_API_URL`` pointing at that server (generated sample data,
   relative paths under a temporary working directory).
3. Dumps the push-waves and collect-outcomes flow runs through the Prefect API (flow run, task
   runs with their names and states, logs, artifacts) as JSON, and screenshots their UI pages
   with headless Chromium (``--chromium``, default ``/usr/bin/chromium``).
4. Masking under a real worker: creates the process work pool ``reminders``, deploys
   build-reminders from ``prefect.yaml`` (``prefect deploy``) and a masking probe flow (this
   file's :func:`masking_probe`, ``flow.from_source(...).deploy``), starts ``prefect worker
   start --pool reminders`` with a client secret in the worker's environment, runs both
   deployments with a phone number (E.164 and national format), an e-mail address and the
   secret in their errors, then reads the logs back from the Prefect API and the worker's
   stdout and checks that no full phone number, e-mail or secret appears
   (``worker-masking.txt``; the script exits non-zero if one does).

Nothing here is part of the test suite (a server, a worker and Chromium take minutes).
Machine paths are replaced by ``<repo>`` / ``<tmp>`` in everything written.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHONE_E164 = "+14165550123"
PHONE_NATIONAL = "020 7946 0958"  # a UK number in national format
EMAIL = "ana.silva@example.com"
SECRET = "Zq9-client-Secret-77x"


def _masking_probe_flow():
    import json
    import logging

    from prefect import flow

    from flows.common import masking_errors, settings_with

    @flow(name="masking-probe")
    @masking_errors
    def masking_probe(contact: str = "the customer") -> None:
        """Log and fail with personal data and the client secret (from the worker's env)."""
        settings = settings_with(None)  # registers the client secret for masking
        secret = settings.genesys.client_secret
        log = logging.getLogger("reminders.probe")
        log.info("probe: sms %s, landline %s, mail %s", PHONE_E164, PHONE_NATIONAL, EMAIL)
        log.info("client secret %s", secret.get_secret_value() if secret else None)
        print(f"probe print: {EMAIL} {PHONE_NATIONAL}", flush=True)
        try:
            raise ValueError(f"bad contact {EMAIL} / {PHONE_NATIONAL} for {contact}")
        except ValueError:
            log.exception("while probing")
        raise RuntimeError(
            json.dumps({"to": PHONE_E164, "landline": PHONE_NATIONAL, "mail": EMAIL, "s": SECRET})
        )

    return masking_probe


if __name__ != "__main__":
    # loaded as a deployment entrypoint (``scripts/ops_evidence.py:masking_probe``)
    masking_probe = _masking_probe_flow()


def main() -> int:
    import argparse
    import os
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ops-evidence")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--skip-worker", action="store_true")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="ops-evidence-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    ui = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
        "PREFECT_LOGGING_SETTINGS_PATH": str(ROOT / "flows" / "logging.yml"),
    }
    env.pop("PREFECT_API_KEY", None)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(tmp)

    def clean(text: str) -> str:
        text = text.replace(str(ROOT), "<repo>").replace(str(tmp), "<tmp>")
        return text.replace(sys.base_prefix, "<python>")

    def write(name: str, text: str) -> None:
        (out / name).write_text(clean(text))
        print(f"wrote {name}", flush=True)

    processes: list[subprocess.Popen] = []
    server_log = open(tmp / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes.append(server)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start")
            time.sleep(0.5)
        print(f"prefect server up on port {port}", flush=True)
        # the documented command that serialises warehouse writers (README, "Concurrency")
        subprocess.run(
            [sys.executable, "-m", "prefect", "gcl", "create", "reminders-warehouse",
             "--limit", "1"],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ok = _pipeline_and_screenshots(ui, out, args, write)
        if not args.skip_worker:
            ok = _worker_masking(api, tmp, write, clean, processes) and ok
        return 0 if ok else 1
    finally:
        for p in reversed(processes):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        server_log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _api_view(flow_run_id: object) -> dict:
    """A flow run as the API holds it: the run, its task runs, logs and artifacts."""
    import asyncio
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort, TaskRunSort

    async def read() -> dict:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            )
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        return {
            "flow_run": {
                "id": str(run.id),
                "name": run.name,
                "flow_id": str(run.flow_id),
                "state": run.state.type.value if run.state else None,
                "state_message": run.state.message if run.state else None,
                "start_time": str(run.start_time),
                "end_time": str(run.end_time),
                "parameters": run.parameters,
            },
            "task_runs": [
                {
                    "id": str(t.id),
                    "name": t.name,
                    "task_key": t.task_key,
                    "state": t.state.type.value if t.state else None,
                    "start_time": str(t.start_time),
                    "end_time": str(t.end_time),
                }
                for t in tasks
            ],
            "logs": [
                {
                    "timestamp": str(log.timestamp),
                    "level": log.level,
                    "name": log.name,
                    "task_run_id": str(log.task_run_id) if log.task_run_id else None,
                    "message": log.message,
                }
                for log in logs
            ],
            "artifacts": [
                {
                    "id": str(a.id),
                    "key": a.key,
                    "type": a.type,
                    "description": a.description,
                    "data": json.loads(a.data)
                    if a.type == "table" and isinstance(a.data, str)
                    else a.data,
                }
                for a in artifacts
            ],
        }

    return asyncio.run(read())


class _Chromium:
    """Headless Chromium driven over the DevTools protocol: open a UI page, wait until a text
    has rendered (the UI is a JS app), click a tab by its label, screenshot the viewport."""

    def __init__(self, binary: str, profile: Path) -> None:
        import socket
        import subprocess
        import time

        import httpx
        from websockets.sync.client import connect

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1600,1200",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium did not start") from None
                time.sleep(0.3)
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.next_id = 0
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1600,
            height=1200,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: object) -> dict:
        import json

        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for_text(self, text: str, timeout: float = 45.0) -> bool:
        import json
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
                return True
            time.sleep(0.5)
        return False

    def shot(self, url: str, png: Path, *, wait_for: str, tab: str | None = None) -> str:
        """Screenshot ``url`` (after clicking ``tab``) once ``wait_for`` shows; returns a note."""
        import base64
        import json
        import time

        self.call("Page.navigate", url=url)
        rendered = self.wait_for_text(tab or wait_for)
        if tab:
            self.js(
                "(() => { const all = [...document.querySelectorAll('*')].filter(e =>"
                f" e.children.length === 0 && e.textContent.trim() === {json.dumps(tab)});"
                " const tab = all.find(e => e.closest('[role=tablist], .p-tabs')) || all[0];"
                " if (tab) tab.click(); })()"
            )
            rendered = self.wait_for_text(wait_for)
        time.sleep(2.0)  # let charts and tables settle
        data = self.call("Page.captureScreenshot", format="png")["data"]
        png.write_bytes(base64.b64decode(data))
        seen = "rendered" if rendered else f"WARNING: {wait_for!r} never showed"
        return f"{png.stat().st_size:,} bytes, {seen}"

    def close(self) -> None:
        self.ws.close()
        self.process.terminate()
        self.process.wait(timeout=20)


def _pipeline_and_screenshots(ui: str, out: Path, args, write) -> bool:  # noqa: ANN001
    import json
    from datetime import date

    import httpx

    from flows.build_reminders import build_reminders
    from flows.collect_outcomes import collect_outcomes
    from flows.demo import demo_overrides, running_sandbox, sandbox_secret
    from flows.push_waves import push_waves
    from tasks.sample_data import generate

    folder = Path("demo")  # relative: no machine path in the runs' parameters and logs
    generate(args.customers, seed=7, as_of=date(2026, 11, 23)).write(folder / "sample", "csv")
    runs: dict[str, object] = {}
    with running_sandbox() as sandbox, sandbox_secret(), httpx.Client(base_url=sandbox) as admin:
        admin.post("/sandbox/reset").raise_for_status()
        overrides = demo_overrides(folder, sandbox)
        overrides["warehouse"] = {"url": "duckdb:///demo/warehouse.duckdb"}
        state = build_reminders(
            as_of="2026-11-23T06:00:00Z", overrides=overrides, return_state=True
        )
        assert state.is_completed(), state.message
        runs["build-reminders"] = state.state_details.flow_run_id
        for hour in (13, 14):
            now = f"2026-11-23T{hour}:05:00Z"
            admin.post("/sandbox/run", json={"until": now}, timeout=300).raise_for_status()
            state = push_waves(now=now, horizon_minutes=60, overrides=overrides, return_state=True)
            assert state.is_completed(), state.message
            runs[f"push-waves-{hour}"] = state.state_details.flow_run_id
        until = "2026-11-24T06:00:00Z"
        admin.post("/sandbox/run", json={"until": until}, timeout=300).raise_for_status()
        state = collect_outcomes(now=until, overrides=overrides, return_state=True)
        assert state.is_completed(), state.message
        runs["collect-outcomes"] = state.state_details.flow_run_id

    import asyncio

    from prefect.logging.handlers import APILogHandler

    asyncio.run(APILogHandler.aflush())
    ok = True
    shots: list[str] = []
    browser = _Chromium(args.chromium, Path("chromium-profile").resolve())
    for label, run_id in runs.items():
        view = _api_view(run_id)
        write(f"api-{label}.json", json.dumps(view, indent=2, default=str))
        if label == "build-reminders":
            continue
        tasks = view["task_runs"]
        if not tasks or not view["logs"] or not view["artifacts"]:
            print(f"{label}: no tasks, logs or artifacts in the API", flush=True)
            ok = False
        if label == "push-waves-13":
            continue
        base = f"{ui}/runs/flow-run/{run_id}"
        first = tasks[0]["name"]
        # (png, url, tab to click, text that shows the page has rendered)
        pages = [
            (f"ui-{label}-logs.png", base, None, "Finished in state"),
            (f"ui-{label}-task-runs.png", base, "Task Runs", first),
            (f"ui-{label}-artifacts.png", base, "Artifacts", view["artifacts"][0]["key"]),
        ]
        if label.startswith("push-waves"):
            waves = [t for t in tasks if t["name"].startswith("push wave ")]
            # the biggest wave (the count is the last number in its name)
            wave = max(
                waves,
                key=lambda t: int(t["name"].rsplit("(", 1)[1].split()[0].replace(",", "")),
                default=None,
            )
            if wave:
                pages.append(
                    (
                        f"ui-{label}-task-run-push-wave.png",
                        f"{ui}/runs/task-run/{wave['id']}",
                        None,
                        "push wave",
                    )
                )
        wanted = {"push-run-waves": "pushed", "push-genesys-requests": "requests"}
        wanted |= {"collect-outcomes": "outcome"}
        for artifact in view["artifacts"]:
            if artifact["key"] in wanted:
                pages.append(
                    (
                        f"ui-{label}-artifact-{artifact['key']}.png",
                        f"{ui}/artifacts/artifact/{artifact['id']}",
                        None,
                        wanted[artifact["key"]],
                    )
                )
        for name, url, tab, wait_for in pages:
            note = browser.shot(url, out / name, wait_for=wait_for, tab=tab)
            where = url.replace(ui, "<ui>") + (f" (tab {tab})" if tab else "")
            shots.append(f"{name}  {note}  {where}")
            print(shots[-1], flush=True)
            ok = ok and "WARNING" not in note
    browser.close()
    write("screenshots.txt", "\n".join(shots) + "\n")
    return ok


def _leaks(text: str) -> list[str]:
    """Personal data or the secret surviving in ``text`` (digit runs compared without
    separators, so a re-grouped number still counts), as in tests/integration/test_ops_logs."""
    import re

    found = [v for v in (EMAIL, "ana.silva", SECRET) if v in text]
    squeezed = re.sub(r"\D", "", text)
    found += [p for p in (PHONE_E164, PHONE_NATIONAL) if re.sub(r"\D", "", p)[-7:] in squeezed]
    return found


def _worker_masking(api: str, tmp: Path, write, clean, processes: list) -> bool:  # noqa: ANN001
    import asyncio
    import os
    import subprocess
    import time

    import sqlalchemy as sa
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.deployments import run_deployment

    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    transcript: list[str] = []

    def sh(cmd: list[str], **kw: object) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
        transcript.append(f"$ {' '.join(cmd[2:])}\n{done.stdout}{done.stderr}".rstrip())
        if done.returncode:
            raise RuntimeError(clean(transcript[-1]))
        return done.stdout

    sh([*prefect, "work-pool", "create", "reminders", "--type", "process"])
    warehouse = tmp / "worker" / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    Secret(value=f"duckdb:///{warehouse}").save("reminders-warehouse-url", overwrite=True)
    deploy_env = os.environ | {
        "REMINDERS_PROJECT_DIR": str(ROOT),
        "REMINDERS_GENESYS__REGION": "mypurecloud.com",
        "REMINDERS_GENESYS__CLIENT_ID": "sandbox-client",
    }
    # build-reminders as prefect.yaml deploys it (job variables: env with the logging config)
    sh([*prefect, "deploy", "-n", "build-reminders-daily"], cwd=ROOT, env=deploy_env)
    # the probe from this file, with the same pull step and logging configuration
    from prefect import flow as prefect_flow

    probe = prefect_flow.from_source(
        source=str(ROOT), entrypoint="scripts/ops_evidence.py:masking_probe"
    )
    probe.deploy(
        name="masking-probe",
        work_pool_name="reminders",
        job_variables={  # as prefect.yaml's env_common
            "env": {
                "PREFECT_LOGGING_SETTINGS_PATH": str(ROOT / "flows" / "logging.yml"),
                "PREFECT_LOGGING_LOG_PRINTS": "true",
            }
        },
        print_next_steps=False,
    )
    transcript.append("deployed masking-probe/masking-probe (flow.from_source(...).deploy)")

    # A stock worker: the secret only in its environment (never in Prefect), its data dir
    # under the temporary folder.
    worker_out = tmp / "worker-stdout.txt"
    worker_env = os.environ | {
        "REMINDERS_GENESYS__CLIENT_SECRET": SECRET,
        "REMINDERS_DATA_DIR": str(tmp / "worker" / "data"),
    }
    worker_env.pop("PREFECT_LOGGING_SETTINGS_PATH", None)
    with open(worker_out, "wb") as sink:
        worker = subprocess.Popen(
            [*prefect[:3], "worker", "start", "--pool", "reminders", "--type", "process"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=worker_env,
            cwd=tmp,
        )
    processes.append(worker)
    transcript.append("$ prefect worker start --pool reminders --type process   (background)")

    overrides = {
        "sources": {
            "customers": {
                "kind": "csv",
                "path": f"export {EMAIL} {PHONE_NATIONAL}/{PHONE_E164}.csv",
            }
        },
        "quality": {"gates": {"enabled": False}},
    }
    started = {
        "build-reminders": run_deployment(
            "build-reminders/build-reminders-daily",
            parameters={"overrides": overrides},
            timeout=0,
        ),
        "masking-probe": run_deployment(
            "masking-probe/masking-probe", parameters={"contact": "Ana"}, timeout=0
        ),
    }

    async def final(run_id: object) -> object:
        async with get_client() as client:
            deadline = time.monotonic() + 420
            while True:
                run = await client.read_flow_run(run_id)
                if run.state and run.state.is_final():
                    await asyncio.sleep(3)  # the flow-run process flushes its last logs
                    logs = await client.read_logs(
                        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                        sort=LogSort.TIMESTAMP_ASC,
                    )
                    return run, logs
                if time.monotonic() > deadline:
                    raise TimeoutError(f"flow run {run.name} still {run.state}")
                await asyncio.sleep(2)

    ok = True
    report = [
        "Masking under a real `prefect worker` (process work pool), read back from the Prefect",
        "API and the worker's stdout. Put in: phone "
        f"{PHONE_E164[:5]}..., national {PHONE_NATIONAL[:3]}..., e-mail {EMAIL[:3]}...@...,",
        "and a client secret (only in the worker's environment). A line is flagged when the",
        "e-mail, its local part, the secret or the last 7 digits of either phone survive.",
        "",
        "== commands",
        *transcript,
        "",
    ]
    for label, run in started.items():
        flow_run, logs = asyncio.run(final(run.id))
        state = flow_run.state
        lines = [f"{log.level:>2} {log.name}: {log.message}" for log in logs]
        message = state.message or ""
        bad = [(line, _leaks(line)) for line in [message, *lines] if _leaks(line)]
        ok = ok and not bad and state.is_failed() and bool(lines)
        report += [
            f"== {label}: flow run {flow_run.name!r} -> {state.type.value}",
            f"state message: {message}",
            f"{len(lines)} log lines via the Prefect API; leaks: {bad or 'none'}",
            *lines,
            "",
        ]
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    console = worker_out.read_text(errors="replace")
    bad_console = [line for line in console.splitlines() if _leaks(line)]
    engine = sa.create_engine(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        errors = [r[0] for r in conn.execute(sa.text("select error from runs")).all()]
    engine.dispose()
    bad_errors = [e for e in errors if e and _leaks(e)]
    ok = ok and not bad_console and not bad_errors and bool(errors)
    report += [
        f"== runs.error in the worker's warehouse: {errors}; leaks: {bad_errors or 'none'}",
        "",
        f"== worker stdout ({len(console.splitlines())} lines); leaks: {bad_console or 'none'}",
        console,
        f"RESULT: {'no full phone, e-mail or secret anywhere' if ok else 'LEAK OR FAILURE'}",
    ]
    # the put-in values themselves are not written (they would trip a grep for leaks)
    write("worker-masking.txt", "\n".join(report) + "\n")
    return ok


if __name__ == "__main__":
    sys.exit(main())
