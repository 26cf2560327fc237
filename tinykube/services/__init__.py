"""Services on the node: the nftables service proxy and the cluster DNS server.

Both read Services and EndpointSlices (and, for DNS, Pods) from the store and program
something outside it: the kernel's packet filter, a DNS socket on the pod network."""
