"""The controls: one module per control of the CoreOS Hardening Guide (installed as `hardnir.tasks`).

A control module holds declared data at the top (`META`, a `hardnir.control.ControlMeta`; `PARAMS`, `SHARED`,
`SHAPES`) and three pure functions: `probe_items(params)`, `check(facts, params) -> Finding` and
`plan_fix(facts, params) -> Plan` (the shape is `hardnir.control.ControlModule`). Other packages add controls of
the same shape through the `hardnir.controls` entry-point group (examples/plugins/hardnir-login-banner).

These modules are not Nornir tasks. The Nornir tasks that run them on hosts (`gather_facts`, `check_control`,
`fix_control`, `rollback_control`) are in `hardnir.nornir_tasks`; the runbooks that chain those tasks are in
`runbooks/` (`hardnir.runbooks`).

Read the modules in this order to follow the guide: sshd_socket (Remote Listening Services), etcd_tls,
fleet_etcd_tls, locksmith_etcd_tls (etcd, fleet and locksmith), core_wheel, core_docker, core_rkt (Local Users,
Docker Daemon, rkt fetch), fleet_socket (fleet API Socket).
"""
