"""Reading finished run directories: discovery and model rebuild (`runs`), the comparison table of
seqrec-report (`report`), and the sweep summary (`sweep`)."""
