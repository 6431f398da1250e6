"""``customs``: the officials' command line (docs/cli.md).

``main(argv) -> int`` parses, runs one command and maps the client's typed errors to
their exit codes in one place: 0 verified and in force (or done), 1 verified and not in
force (or refused by the rules), 2 usage, 3 verification failed, 4 no node answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from node.client.errors import (
    EXIT_INTERNAL,
    EXIT_NOT_IN_FORCE,
    EXIT_OK,
    ClientError,
    UsageError,
)

__all__ = ["entrypoint", "main"]

EXAMPLES = {
    "verify": """examples:
  customs verify CO-CN-2026-000123 --genesis genesis.json --node http://127.0.0.1:7101
  customs verify CO-CN-2026-000123 --node URL1 --node URL2 --max-age 15m
  customs verify CO-CN-2026-000123 --bundle proof.clb            (offline: no network)
  customs verify CO-CN-2026-000123 --at 2026-03-02T10:14:00Z --document certificate.pdf""",
    "history": """examples:
  customs history cert/CO-CN-2026-000123
  customs history shipment/6CN-SHA-2026-0001      (also each cited certificate's status)
  customs history 6CN-SHA-2026-0001 --bundle proof.clb""",
    "proof": """examples:
  customs proof CO-CN-2026-000123 -o proof.clb
  customs proof shipment/6CN-SHA-2026-0001 AEO-CN-0042 -o voyage.clb""",
    "status": """examples:
  customs status --node http://127.0.0.1:7101 --node http://127.0.0.1:7102""",
    "submit": """examples:
  customs submit cert.revoke --set cert_id=CO-CN-2026-000123 --set reason="fraud" \\
      --token-file cn/api.token --wait
  customs submit shipment.event --body event.json --key cn/node.key --token-file cn/api.token
  customs submit cert.issue --set hs_codes='["851712"]' ... (values that parse as JSON are JSON)""",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a UsageError (exit 2 through ``main``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser, *, nodes: bool = True) -> None:
    parser.add_argument(
        "--genesis",
        metavar="FILE",
        help="the network's genesis.json (else CUSTOMS_GENESIS, else config.toml's genesis)",
    )
    if nodes:
        parser.add_argument(
            "--node",
            metavar="URL",
            action="append",
            dest="nodes",
            help="a node to ask; repeat for several (else CUSTOMS_NODES)",
        )
        parser.add_argument(
            "--timeout", type=float, metavar="S", help="seconds to wait for a node (default 5)"
        )
        parser.add_argument(
            "--trust",
            choices=("genesis", "system"),
            help="https nodes: 'genesis' (default) pins a member's endpoint to its genesis "
            "key; 'system' also accepts other https URLs verified by the system trust store",
        )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where checkpoints are remembered (default $XDG_STATE_HOME/customs)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document (docs/cli.md)")
    parser.add_argument("--quiet", "-q", action="store_true", help="the verdict line only")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="customs",
        description="Verify certificates and shipments on the Customs Ledger, trusting "
        "only the network's genesis file.",
        epilog="exit codes: 0 in force / done, 1 not in force / refused, 2 usage, "
        "3 verification failed, 4 no node answered",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    verify = command("verify", "Is this certificate genuine and in force?")
    verify.add_argument("cert_id", metavar="CERT-ID")
    verify.add_argument(
        "--bundle", type=Path, metavar="FILE", help="verify from a saved proof bundle (no network)"
    )
    verify.add_argument("--at", metavar="TIME", help="was it in force then? ISO 8601 or ms")
    verify.add_argument(
        "--document",
        type=Path,
        metavar="FILE",
        help="also check this file's SHA-256 against the certificate's",
    )
    verify.add_argument(
        "--max-age", metavar="D", help="refuse a head older than D (90s, 15m, 2h, 7d)"
    )
    _common(verify)

    history = command("history", "The verified timeline of a certificate or a shipment.")
    history.add_argument("subject", metavar="SUBJECT", help="cert/ID, shipment/UCR, or bare")
    history.add_argument("--bundle", type=Path, metavar="FILE")
    history.add_argument("--max-age", metavar="D")
    _common(history)

    proof = command("proof", "Save a verified proof bundle for offline use.")
    proof.add_argument("subjects", metavar="SUBJECT", nargs="+")
    proof.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)
    proof.add_argument("--max-age", metavar="D")
    _common(proof)

    status = command("status", "Each node's state and the newest head verified against genesis.")
    _common(status)

    submit = command("submit", "Submit one entry; --wait follows it until committed.")
    submit.add_argument("kind", metavar="KIND", help="cert.issue, cert.revoke, shipment.event, …")
    submit.add_argument("--body", metavar="FILE", help="the body as a JSON object ('-': stdin)")
    submit.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a body field; repeat (dotted keys nest)",
    )
    submit.add_argument(
        "--token-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="the node's API token; repeat to pair one with each --node",
    )
    submit.add_argument(
        "--key", type=Path, metavar="FILE", help="sign here with this member key (PKCS#8 PEM)"
    )
    submit.add_argument("--wait", action="store_true", help="wait until committed or refused")
    submit.add_argument("--wait-timeout", type=float, default=60.0, metavar="S")
    _common(submit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except ClientError as exc:
        _report_error(exc, args)
        return exc.exit_code
    except KeyboardInterrupt:
        print("customs: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug of ours must never read as a verdict (exit 1 is "not in force").
        print(f"customs: internal error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def _report_error(exc: ClientError, args: argparse.Namespace | None) -> None:
    if args is not None and getattr(args, "json", False):
        # The check or code has its own field; the message is the reason alone.
        message = getattr(exc, "reason", exc.message)
        error: dict[str, Any] = {"exit_code": exc.exit_code, "message": message}
        check = getattr(exc, "check", None) or getattr(exc, "code", None)
        if check is not None:
            error["check"] = check
        print(json.dumps({"command": args.command, "exit_code": exc.exit_code, "error": error}))
        return
    label = {2: "usage", 3: "VERIFICATION FAILED", 4: "no answer"}.get(exc.exit_code, "refused")
    print(f"customs: {label}: {exc.message}", file=sys.stderr)


def entrypoint() -> None:
    sys.exit(main())


# -- the commands ------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _console(args: argparse.Namespace) -> Any:
    from rich.console import Console

    # Piped into a file or a log, rich would wrap at 80 columns; a table reads better wide.
    width = None if sys.stdout.isatty() else 120
    return Console(highlight=False, soft_wrap=False, width=width)


def _emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[Any], None]) -> None:
    if args.json:
        print(json.dumps(document, indent=1, sort_keys=False))
    else:
        human(_console(args))


def _reader(args: argparse.Namespace, *, offline: bool) -> Any:
    from node.client.checkpoints import CheckpointStore, default_state_dir
    from node.client.durations import parse_duration_ms
    from node.client.reading import Reader
    from node.client.settings import load_settings

    settings = load_settings(args.genesis, args.nodes, args.timeout, args.trust)
    genesis = settings.genesis()
    state_dir = args.state_dir or default_state_dir()
    max_age = parse_duration_ms(args.max_age) if args.max_age else None
    nodes: list[Any] = []
    if not offline:
        nodes = _clients(settings, genesis)
        if not nodes:
            raise UsageError("no node to ask: give --node URL, CUSTOMS_NODES, or --bundle FILE")
    return Reader(
        genesis,
        CheckpointStore(state_dir, genesis),
        now=_now_ms(),
        max_age_ms=max_age,
        nodes=nodes,
        bundle_path=getattr(args, "bundle", None),
    )


def _clients(settings: Any, genesis: Any, tokens: Sequence[str] = ()) -> list[Any]:
    """A client per node URL, https ones pinned by genesis or, if asked, system-trusted."""
    from node.client.transport import node_client

    try:
        return [
            node_client(
                url,
                settings.timeout,
                genesis,
                settings.trust,
                tokens[i if len(tokens) > 1 else 0] if tokens else None,
            )
            for i, url in enumerate(settings.nodes)
        ]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _verify(args: argparse.Namespace) -> int:
    from node.client.durations import parse_moment_ms
    from node.client.render import render_verdict, verdict_json

    at = parse_moment_ms(args.at) if args.at else None
    reader = _reader(args, offline=args.bundle is not None)
    verdict, obtained = reader.verify(args.cert_id, at=at, document=args.document)
    code = EXIT_OK if verdict.in_force else EXIT_NOT_IN_FORCE
    _emit(
        args,
        verdict_json(reader.genesis, verdict, obtained, code),
        lambda console: render_verdict(
            console, reader.genesis, verdict, obtained, quiet=args.quiet, at_given=at is not None
        ),
    )
    return code


def _history(args: argparse.Namespace) -> int:
    from node.client.render import history_json, render_history
    from node.client.verdicts import timeline

    reader = _reader(args, offline=args.bundle is not None)
    histories, view, obtained = reader.history(args.subject)
    timelines = {h.subject: timeline(reader.genesis, h.entries) for h in histories}
    _emit(
        args,
        history_json(reader.genesis, histories, view, obtained, timelines),
        lambda console: render_history(
            console, reader.genesis, histories, view, obtained, timelines, quiet=args.quiet
        ),
    )
    return EXIT_OK


def _proof(args: argparse.Namespace) -> int:
    from node.client.files import save_atomically
    from node.client.render import proof_json, render_proof

    args.bundle = None
    reader = _reader(args, offline=False)
    obtained = reader.proof(args.subjects)
    try:
        save_atomically(args.output, obtained.data)
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write the bundle: {exc.strerror}") from exc
    document = {
        "command": "proof",
        "exit_code": 0,
        "file": str(args.output),
        "bytes": len(obtained.data),
        "proof": proof_json(reader.genesis, obtained),
    }

    def human(console: Any) -> None:
        console.print(
            f"[bold green]saved[/] {args.output} ({len(obtained.data):,} bytes), "
            f"verified against genesis"
        )
        if not args.quiet:
            render_proof(console, reader.genesis, obtained)

    _emit(args, document, human)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from node.client.checkpoints import CheckpointStore, default_state_dir
    from node.client.render import render_status
    from node.client.settings import load_settings
    from node.client.status import gather_status

    settings = load_settings(args.genesis, args.nodes, args.timeout, args.trust)
    genesis = settings.genesis()
    nodes = _clients(settings, genesis)
    if not nodes:
        raise UsageError("no node to ask: give --node URL or CUSTOMS_NODES")
    checkpoints = CheckpointStore(args.state_dir or default_state_dir(), genesis)
    report = gather_status(nodes, genesis, checkpoints, _now_ms())
    _emit(
        args,
        report.to_json(genesis),
        lambda console: render_status(console, genesis, report, quiet=args.quiet),
    )
    return EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    from node.client.settings import load_settings
    from node.client.submit import build_body, read_token, sign_locally, submit

    settings = load_settings(args.genesis, args.nodes, args.timeout, args.trust)
    if not settings.nodes:
        raise UsageError("no node to post to: give --node URL or CUSTOMS_NODES")
    if not args.token_file:
        raise UsageError("a node takes entries only with its API token: give --token-file FILE")
    tokens = [read_token(path) for path in args.token_file]
    if len(tokens) not in (1, len(settings.nodes)):
        raise UsageError("give one --token-file for all nodes, or one per --node, in order")
    genesis = settings.genesis() if (args.key is not None or settings.genesis_path) else None
    nodes = _clients(settings, genesis, tokens)
    body = build_body(args.body, args.set)
    signed = None
    if args.key is not None:
        assert genesis is not None
        signed = sign_locally(args.key, genesis, args.kind, body, _now_ms())
    outcome = submit(
        nodes,
        genesis,
        kind=args.kind,
        signed=signed,
        body=body,
        wait_s=args.wait_timeout if args.wait else None,
    )

    def human(console: Any) -> None:
        if outcome.status == "committed":
            from node.client.heads import format_time

            assert outcome.block_time is not None
            console.print(
                f"[bold green]committed[/] {outcome.entry_id} at height "
                f"{outcome.height}, {format_time(outcome.block_time)}"
            )
        else:
            console.print(
                f"[bold]pending[/] {outcome.entry_id} at {outcome.node} "
                "(not yet durable: --wait follows it until committed)"
            )
        if outcome.reposts and not args.quiet:
            console.print(f"  posted again {outcome.reposts} time(s): a node had forgotten it")

    _emit(args, outcome.to_json(), human)
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "verify": _verify,
    "history": _history,
    "proof": _proof,
    "status": _status,
    "submit": _submit,
}
