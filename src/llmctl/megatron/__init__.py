"""The one megatron-core boundary: every `import megatron` of llmctl lives in this package.

    from llmctl.megatron import model; model.padded_vocab(50257, tensor=4)   # 50688

`datasets` (token data: IndexedDataset files, GPTDataset through BlendedMegatronDatasetBuilder),
`model` (the recipe -> TransformerConfig, GPTModel, layer specs), `training` (parallel state,
DDP, optimizer, schedules), `checkpoint` (dist_checkpointing save/load, the weights-only CPU load
export uses, and the refusal of foreign code) and `cpu` (megatron-core without a GPU). Importing
megatron.core takes seconds and warns about the missing TransformerEngine/Apex on CPU machines:
each submodule imports it inside its functions or on its own import, never the CLI.
"""

from __future__ import annotations

# every checkpoint this process loads through megatron-core refuses foreign code (issue 13)
from llmctl.megatron import checkpoint as _checkpoint

_checkpoint.install()
