module github.com/arbor-rpc/arbor

go 1.26

require (
	github.com/shamaton/msgpack/v2 v2.4.0
	go.uber.org/goleak v1.3.0
)
