"""The release engine: what a release is, where it stands, what the world must be, and who moves it.

* `phases` and `plan`: the phases with their one transition table, and a rollout's typed steps;
* `release`: a release, its events, and the Ledger seam they are read and written through;
* `desired`: the world a model's releases call for (routes, servers, retirements), a pure function;
* `reconciler`: the one code that changes the world (routes, servers, the champion alias) to match;
* `controller` with `analysis`, `stats`, `samples`: the judge that measures and decides;
* `operations` and `decisions`: what people do (release, roll back, abort, approve, reject).

Decisions are written to the ledger and nothing else; the reconciler derives the world from it.
"""
