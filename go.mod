module github.com/plumtree-go/plumtree

go 1.25

require (
	github.com/cespare/xxhash/v2 v2.3.0
	go.uber.org/goleak v1.3.0
)
