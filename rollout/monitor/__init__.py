"""The production monitor: the champion's live inputs, answers and labels, judged with a stated
false-alarm rate, and a retrain through every gate when they move (`monitor:` in launchbay.yaml).

`watch.Monitor.tick` is one pass: pull what the champion's servers answered since the last pass
(`GET /launchbay/answers`), count repeated rows once, score the batch against the reference the
evaluate step measured for that version (`launchbay.checks.live_reference`), join the labels
that came back, raise an alarm (a ledger event, notified) and start a retrain when one is due.
Its state -- the detectors' bets, the cursors, the timeline -- is a file, written after each
pass, so a restarted controller resumes the same bets.
"""
