"""`python -m llmctl` (and `torchrun ... -m llmctl pretrain ...`)."""

from llmctl.cli import main

if __name__ == "__main__":  # megatron's checkpoint manager spawns processes that re-import __main__
    main()
