"""A real Kubernetes control plane for the tests: kube-apiserver and kube-controller-manager
built from the published Go modules, etcd from Debian, and a local node that runs pods as
processes. `scripts/kube up|down|status|env` runs it; see `docs/kubernetes.md`."""
