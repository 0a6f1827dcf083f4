"""`llmctl plan`: scaling laws, per-GPU memory, training time and loss fits, before a GPU is rented.

    llmctl plan budget --flops 5.76e23
    llmctl plan memory recipes/pretrain/llama-7b-tp2-pp2.yaml --gpus 64 --search

Pure arithmetic (numpy/scipy, matplotlib for the PNGs): no GPU, no network, no artifact written.
laws.py (compute-optimal N and D), memory.py (bytes per GPU at a layout), timing.py (time and
GPU-hours), fit.py (the Chinchilla form fitted to one's runs), runs.py (recipes and artifacts),
plots.py (PNGs).
"""
