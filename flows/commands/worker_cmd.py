"""`w2s-transfer worker`: a Prefect process worker for the pool executor's arm groups."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker_command(
        pool: str = typer.Option(..., "--pool", help="work pool to poll (a process pool)"),
        name: str = typer.Option(None, help="worker name (Prefect's default: a generated one)"),
        limit: int = typer.Option(None, min=1, help="most flow runs at once"),
        queue: list[str] = typer.Option(None, "--queue", help="work queue(s) to poll "
                                        "(default: all of the pool's)"),
    ) -> None:
        """Run Prefect's process worker on POOL with one change: each arm group of the pool
        executor starts in a process that was started ahead and has already imported Prefect
        and the group flow (docs/scale.md). Other flow runs run as `prefect worker start`
        runs them."""
        from flows.commands._errors import user_errors
        from flows.standby_worker import require_api_url, serve

        with user_errors():
            require_api_url()
        serve(pool, name, limit, queue or None)
