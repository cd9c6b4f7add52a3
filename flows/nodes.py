"""One arm group on several nodes, through PyTorch's standard c10d rendezvous (torchrun).

A group whose plan asks for ``compute.nodes > 1`` runs ``nodes x processes`` ranks. Every node
starts the same command, ``python -m torch.distributed.run --nnodes N --nproc-per-node P
--rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID -m flows.worker GROUP.json``; the
agents meet at the endpoint (node 0's address: the c10d store is hosted by the agent running
there), agree on ranks, and set each rank's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``, which DeepSpeed's ``init_distributed`` reads. No launcher of
our own: this is exactly what ``torchrun`` does.

Who writes: rank 0, wherever c10d placed it. It publishes the runs to the shared store (other
ranks follow its run leases, ``transfer.leases.follow``, by the job token the rendezvous gives
all ranks) and writes the group's result to ``STORE/.groups/<tag>.result.json``; every node
reads the result from there.

Where the nodes come from:

- Kubernetes (``infra/k8s/multinode-job-template.json``): the pool's job is an Indexed Job of
  ``nodes`` pods behind a headless Service. Pod 0 runs the Prefect flow run
  (``flows.group_flow.run_arm_group`` calls :func:`run_as_node`); pods 1..N-1 run
  ``python -m flows.nodes follow``, which reads the same flow run's parameters from the Prefect
  API (``PREFECT__FLOW_RUN_ID``, set by the worker in every pod) and joins as the node
  ``JOB_COMPLETION_INDEX``. The endpoint is pod 0's stable DNS name
  (``W2S_RDZV_ENDPOINT``, set by the template).
- By hand or in tests: ``python -m flows.nodes join GROUP.json --nodes N --endpoint H:P
  --run-id ID`` on each node.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from flows.worker import ArmGroup
from w2s_common.errors import InputError

ENDPOINT_ENV = "W2S_RDZV_ENDPOINT"  # host:port of node 0's rendezvous
NODE_RANK_ENVS = ("W2S_NODE_RANK", "JOB_COMPLETION_INDEX")  # an Indexed Job's pod index
DEFAULT_RDZV_PORT = 29400  # torchrun's default c10d port
# How long node 0 waits for rank 0's result when rank 0 ran on another node (its writes to the
# shared store may still be in flight, or hidden by an attribute cache, when node 0's ranks end).
RESULT_GRACE_S = 120.0


def rendezvous_command(group_file: Path, *, nodes: int, processes: int, endpoint: str,
                       run_id: str, node_rank: int | None = None) -> list[str]:
    """The argv one node runs: torchrun (``torch.distributed.run``) with the c10d rendezvous.

    Args:
        group_file: the group's JSON (``ArmGroup``) on this node.
        nodes: nodes in the rendezvous (``--nnodes``).
        processes: ranks on this node (``--nproc-per-node``).
        endpoint: ``host:port`` every node reaches (node 0 hosts the c10d store there).
        run_id: the rendezvous id (the same on every node of one attempt, unique across them).
        node_rank: a hint only; c10d assigns node ranks in the order nodes join.
    """
    argv = [sys.executable, "-u", "-m", "torch.distributed.run", f"--nnodes={nodes}",
            f"--nproc-per-node={processes}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}", "--max-restarts=0"]
    if node_rank is not None:
        argv.append(f"--node-rank={node_rank}")
    return [*argv, "-m", "flows.worker", str(group_file)]


def endpoint_from_env() -> str:
    """``$W2S_RDZV_ENDPOINT`` (``host`` or ``host:port``), or InputError naming it."""
    raw = (os.environ.get(ENDPOINT_ENV) or "").strip()
    if not raw:
        raise InputError("a group on several nodes needs node 0's rendezvous address "
                         "(host:port); the multi-node job template sets it "
                         "(infra/k8s/multinode-job-template.json)", field=ENDPOINT_ENV)
    host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", str(DEFAULT_RDZV_PORT))
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"expected host:port, got {raw!r}", field=ENDPOINT_ENV)
    return f"{host}:{port}"


def node_rank_from_env() -> int:
    for name in NODE_RANK_ENVS:
        raw = os.environ.get(name)
        if raw not in (None, ""):
            if not raw.isdigit():
                raise InputError(f"expected a node index >= 0, got {raw!r}", field=name)
            return int(raw)
    return 0


def run_as_node(group: ArmGroup, work_dir: Path, *, nodes: int, processes: int, run_id: str,
                endpoint: str | None = None, node_rank: int | None = None) -> dict[str, Any]:
    """Run this node's ranks of a multi-node group and return the group's outcome.

    Args:
        group: the group; its ``result`` must be on the shared store (rank 0 writes it,
            possibly on another node).
        work_dir: this node's directory for the group file and log.
        nodes, processes: nodes in the rendezvous and ranks on this node.
        run_id: the rendezvous id (the group run's tag).
        endpoint: ``host:port`` of the rendezvous; default ``$W2S_RDZV_ENDPOINT``.
        node_rank: this node's index (a hint for c10d); default from the environment.

    Returns:
        ``{"runs", "executed", "executed_arms", "seconds"}`` as rank 0 wrote it.

    Raises:
        GroupFailed: a node's ranks failed (the rendezvous fails every node then).
        InputError: no endpoint, or a group result outside a shared location.
        ShutdownInProgress: a signal arrived before this node's ranks started.
    """
    from flows.execute import run_group_subprocess

    if not group.result:
        raise InputError("a multi-node group needs its result path on the shared store",
                         field="group.result")
    endpoint = endpoint or endpoint_from_env()
    rank = node_rank if node_rank is not None else node_rank_from_env()

    def command(group_file: Path) -> list[str]:
        return rendezvous_command(group_file, nodes=nodes, processes=processes,
                                  endpoint=endpoint, run_id=run_id, node_rank=rank)

    return run_group_subprocess(group, Path(work_dir), processes, command=command,
                                result_grace_s=RESULT_GRACE_S)


def follow_flow_run(flow_run_id: str, work_dir: Path, node_rank: int) -> dict[str, Any]:
    """Join the rendezvous of the group run ``flow_run_id`` as node ``node_rank`` (> 0)."""
    from prefect.client.orchestration import get_client

    from flows.group_flow import group_paths

    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(flow_run_id).parameters
    group = ArmGroup.model_validate(parameters["group"])
    tag = parameters["tag"]
    group = group.model_copy(update={"result": str(group_paths(group.store, tag).result)})
    return run_as_node(group, work_dir, nodes=int(parameters.get("nodes", 1)),
                       processes=int(parameters.get("processes", 1)), run_id=tag,
                       node_rank=node_rank)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.nodes join GROUP.json ...`` or ``python -m flows.nodes follow``."""
    from flows.execute import GroupFailed
    from flows.slots import ShutdownInProgress
    from flows.worker import PERMANENT_EXIT

    parser = argparse.ArgumentParser(prog="python -m flows.nodes", description=__doc__.split(
        "\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    join = sub.add_parser("join", help="run this node's ranks of a group file")
    join.add_argument("group_file", type=Path)
    join.add_argument("--nodes", type=int, required=True)
    join.add_argument("--processes", type=int, default=1)
    join.add_argument("--endpoint", default=None, help=f"host:port (default ${ENDPOINT_ENV})")
    join.add_argument("--run-id", required=True)
    join.add_argument("--node-rank", type=int, default=None)
    join.add_argument("--work-dir", type=Path, default=Path("w2s-groups"))
    follow = sub.add_parser("follow", help="join the rendezvous of a Prefect group run "
                                           "(pods 1..N-1 of the multi-node job)")
    follow.add_argument("--flow-run-id", default=os.environ.get("PREFECT__FLOW_RUN_ID"))
    follow.add_argument("--work-dir", type=Path, default=Path("w2s-groups"))
    args = parser.parse_args(argv)
    try:
        if args.command == "join":
            if args.nodes < 1 or args.processes < 1:
                raise InputError("expected --nodes and --processes >= 1", field="--nodes")
            group = ArmGroup.model_validate_json(args.group_file.read_text())
            outcome = run_as_node(group, args.work_dir.resolve(), nodes=args.nodes,
                                  processes=args.processes, run_id=args.run_id,
                                  endpoint=args.endpoint, node_rank=args.node_rank)
        else:
            if not args.flow_run_id:
                raise InputError("no flow run to follow (set PREFECT__FLOW_RUN_ID)",
                                 field="--flow-run-id")
            outcome = follow_flow_run(args.flow_run_id, args.work_dir.resolve(),
                                      node_rank_from_env())
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return PERMANENT_EXIT
    except GroupFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return err.returncode if err.returncode > 0 else 1
    except ShutdownInProgress as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return PERMANENT_EXIT
    print(json.dumps({k: outcome[k] for k in ("runs", "executed", "audits") if k in outcome}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
