"""`python -m llmctl.cli ...`: the same as `llmctl ...` (tests and sbatch scripts run it so)."""

from llmctl.cli import main

if __name__ == "__main__":  # spawned worker processes re-import __main__; they must not run the CLI
    main()
