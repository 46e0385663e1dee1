module github.com/synack/synack/bench

go 1.26.0

replace github.com/synack/synack => ../

require (
	github.com/synack/synack v0.0.0-00010101000000-000000000000
	gvisor.dev/gvisor v0.0.0-20250503011706-39ed1f5ac29c
)

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.7.0 // indirect
)
