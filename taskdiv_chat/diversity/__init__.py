"""The diversity engine: ask for answers that differ the way the task wants, and measure how they differ.

strategies  the messages each regeneration strategy sends; splitting k-at-once replies
generate    generate_variants(): n more answers from a backend
metrics     generic metrics (vocabulary, embedding, compression) and final-answer extraction
judge       functional-equivalence judges: LLMJudge (the paper's), LocalJudge (offline), make_judge()
report      analyze(): groups, unique count, verdict and badge for a set of answers
bench       the paper's experiment over a prompt file, with a Markdown report and a chart
"""
