"""Gates: data (Great Expectations), model quality vs the champion, and (later) signatures.

Every gate speaks one type, `Verdict`, and produces a `GateReport` that a person can read
(Markdown) and a program can read (JSON).
"""
