"""The release managers' desk: `launchbay ui` (a page with a release's evidence and the signed
decision) and `launchbay history --plot`. It reads the ledger, the registry, the gate reports and
Prometheus through the floors below and decides through `rollout.decisions`, like the CLI."""
