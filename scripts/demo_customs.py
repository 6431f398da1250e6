"""``customs`` as an official runs it: a real process per call, with ``--json``, the
network's genesis, and a checkpoint directory of the demo's own (never ``~/.local``).

Every call's exit code and JSON document are checked against what the step expects;
anything else is a ``StepFailed`` that names the call and what came back.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from demo_narrate import Narrator, StepFailed

__all__ = ["Customs", "Result"]

_CALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    code: int
    document: dict[str, Any]

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.document.get("error", {})
        return error


class Customs:
    def __init__(
        self, executable: Path, genesis: Path, work: Path, env: Mapping[str, str], say: Narrator
    ) -> None:
        self.executable = executable
        self.genesis = genesis
        self.work = work
        self.env = dict(env)
        self.say = say
        self.calls = 0
        self._files = count(1)

    def _argv(self, args: Sequence[str | Path], nodes: Sequence[str]) -> list[str]:
        argv = [str(self.executable), *(str(a) for a in args), "--genesis", str(self.genesis)]
        for url in nodes:
            argv += ["--node", url]
        return [*argv, "--json"]

    def run(
        self, *args: str | Path, nodes: Sequence[str] = (), expect: Sequence[int] = (0,)
    ) -> Result:
        argv = self._argv(args, nodes)
        self.say.command(["customs", *argv[1:]])
        self.calls += 1
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=_CALL_TIMEOUT_S
        )
        return self._result(argv, done.returncode, done.stdout, done.stderr, expect)

    def _result(
        self, argv: list[str], code: int, out: str, err: str, expect: Sequence[int]
    ) -> Result:
        what = f"customs {argv[1]} {argv[2] if len(argv) > 2 else ''}".strip()
        try:
            document = json.loads(out)
        except ValueError:
            raise StepFailed(
                f"{what}: exit {code} without a JSON document ({err.strip()[-300:]})"
            ) from None
        if not isinstance(document, dict) or document.get("exit_code") != code:
            raise StepFailed(f"{what}: exit {code} but the JSON says {document.get('exit_code')}")
        if code not in expect:
            message = document.get("error", {}).get("message") or document.get("headline", "")
            raise StepFailed(f"{what}: exit {code}, expected {list(expect)}: {message}")
        return Result(code, document)

    def body_file(self, body: Mapping[str, Any]) -> Path:
        path = self.work / f"body-{next(self._files):03d}.json"
        path.write_text(json.dumps(body, indent=1))
        return path

    def submit(
        self, kind: str, body: Mapping[str, Any], *, node: str, token_file: Path,
        expect: Sequence[int] = (0,),
    ) -> Result:  # fmt: skip
        """``customs submit KIND --body FILE --wait``: signed by the node as its member."""
        return self.run(
            "submit", kind, "--body", self.body_file(body), "--token-file", token_file,
            "--wait", "--wait-timeout", "30",
            nodes=[node], expect=expect,
        )  # fmt: skip

    def submit_together(
        self, writes: Sequence[tuple[str, Mapping[str, Any], str, Path]]
    ) -> list[Result]:
        """Independent writes (kind, body, node, token file) as concurrent ``customs
        submit --wait`` processes: administrations act at the same time, too."""
        started = []
        try:
            for kind, body, node, token in writes:
                argv = self._argv(
                    ["submit", kind, "--body", str(self.body_file(body)), "--token-file",
                     str(token), "--wait", "--wait-timeout", "30"],
                    [node],
                )  # fmt: skip
                self.say.command(["customs", *argv[1:]])
                self.calls += 1
                proc = subprocess.Popen(
                    argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                started.append((argv, proc))
            results = []
            for argv, proc in started:
                out, err = proc.communicate(timeout=_CALL_TIMEOUT_S)
                results.append(self._result(argv, proc.returncode, out, err, (0,)))
            return results
        finally:
            for _, proc in started:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
