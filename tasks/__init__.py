"""One module per control of the CoreOS Hardening Guide: metadata, check, fix and rollback side by side.

Read the modules in this order to follow the guide: sshd_socket (Remote Listening Services), etcd_tls,
fleet_etcd_tls, locksmith_etcd_tls (etcd, fleet and locksmith), core_wheel, core_docker, core_rkt (Local Users,
Docker Daemon, rkt fetch), fleet_socket (fleet API Socket).
"""
