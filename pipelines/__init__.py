"""The training pipeline: Hera workflow definition, its steps, a local executor and Argo submission.

* `pipelines.steps`     -- the steps (validate-data, train, evaluate, register) as Hera `@script`
  templates; outside a workflow context each is a plain Python function.
* `pipelines.training`  -- the one `Workflow` wiring them into a DAG.
* `pipelines.executor`  -- runs that same Workflow on this machine the way Argo would.
* `pipelines.argo`      -- renders it to YAML, validates it, submits it to an Argo server.
"""
