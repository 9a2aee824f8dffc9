"""spike-reconcile: a desired-state reconciler for Spike.sh incidents (the `reconcile` CLI).

State files say how incidents should be; `reconcile plan` shows the calls that would make
Spike match them, `reconcile apply` makes them and journals each one. docs/ holds the
contract: docs/state-files.md, docs/plan-format.md, docs/journal.md, docs/api-calls.md,
docs/cli.md, docs/trust.md, docs/teams.md, docs/drift.md, docs/rules.md.

Words
-----
- desired: how an incident should be, from the state files (`states.loader.DesiredState`).
- recorded: what this tool last applied, replayed from the journal (`journal.records.Recorded`).
- live: what Spike says now, read with GET /incidents/{counterId} (`spike.live`).
- plan: desired x recorded -> the changes and the operations that make them (`planner.Plan`).
- operation: one API call of the endpoint table (`model.Operation`); change: one field of one
  incident going from its recorded value to its desired one (`model.Change`).
- drift: a live value that differs from the recorded one (`model.Drift`).
- rule: desired fields for every open incident matching a filter (`rules.Rule`); its
  candidates are the open incidents Spike lists (`rules.Candidate`), its expansion the
  incidents it matched, with the rule behind each field (`rules.expand`).
- project, team: `reconcile.yaml` (`config.Project`) and one team of it (`config.TeamConfig`):
  its Spike team id, state files, journal and drift policies. Without `reconcile.yaml` the
  project has one implicit team (SPIKE_TEAM_ID, the paths and journal of the command line);
  every use case and view takes the project's teams, one or many (`usecases.project`), and
  whether they are named is what makes plan format 2 and `Team NAME:` headings.
- forget: an incident in no state file any more: dropped from the journal (two facts kept).
- unmanaged: a field removed from a state file: no longer managed, left as it is in Spike.
- escalation intent / uncertain: an escalate call is journaled as an intent before it is
  sent; if its outcome is unknown the incident is uncertain until the operator records the
  count read in Spike's activity log.

Layers (bottom to top)
----------------------
0 errors, jsontext, redact, wording, limits . 1 model . 2 endpoints, httpcall . 3 planner, rules,
approvals, states/, journal/, spike/, github, config/ . 4 planfile/, applier, sandbox/ .
5 usecases/ . 6 render/ . 7 cli/ . 8 this package file, which imports nothing.

The import rule: a module imports only its own layer or lower; no cycles, counting
function-local and TYPE_CHECKING imports; tests/test_architecture.py checks it.
"""
