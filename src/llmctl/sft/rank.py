"""One rank of `llmctl sft --nproc N`: `python -m llmctl.sft.rank SPEC.json`, started by torchrun.

SPEC holds the resolved config, the invocation (RunArgs), the command line that started it
(recorded in the manifest) and a status file: a user error is written there for the parent to
report (exit 2, once) while the ranks exit 0, so that torchrun adds no traceback of its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def main() -> None:
    from llmctl import launch
    from llmctl.cli.common import guard
    from llmctl.config import RunArgs, from_dict
    from llmctl.console import set_quiet
    from llmctl.errors import UserError
    from llmctl.sft.config import SftConfig

    launch.die_with_parent()  # torchrun's agent dies with `llmctl sft`; so do its ranks
    spec = json.loads(Path(sys.argv[1]).read_text())
    sys.argv = spec["argv"]
    set_quiet(bool(spec.get("quiet")))

    status = Path(spec["status"])

    @guard
    def one_rank() -> None:
        from llmctl.sft import stage

        cfg = from_dict(SftConfig, spec["config"])
        cfg.run = RunArgs(**spec["run"])
        try:
            stage.run(cfg)
        except UserError as e:  # rank 0's: the parent says it, once, without torchrun's traceback
            status.write_text(json.dumps({"user_error": str(e)}))
        except SystemExit as e:
            if e.code != 2:  # 2: another rank's user error, which rank 0 reports
                raise

    try:
        one_rank()
    except typer.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
