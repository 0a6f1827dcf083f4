"""On-disk formats that one stage writes and another reads, in one place (DESIGN.md §5).

    from llmctl.formats import documents, ngrams, tokens

`documents`: the `{"id", "text", "meta"}` record and its shards (clean and dedup write them;
dedup, tokenize and eval read them). `ngrams`: the word n-gram hashing and the Bloom-filter index
`ngram_index.{npy,json}` (dedup writes it, eval reads it). `tokens`: the token-data layout of a
tokenize artifact (`blend.json`, `tokenizer/`, `data/NAME_text_document.{bin,idx}`) that
pretrain reads. Manifests are artifacts.py's. No stage imports another stage: they meet here.
"""
