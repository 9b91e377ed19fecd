"""Shipping a trained run: bundles (`bundle`, `engine`), the HTTP server (`app`, `batcher`,
`requests`, `queries`) and occlusion explanations (`explain`). `seqrec-export` and `seqrec-serve`
(`seqrec_cli/cli/export.py`, `seqrec_cli/cli/serve.py`) are the commands."""
