"""Detection-quality benches on labelled corpora: loading, baseline, scoring, root cause."""
