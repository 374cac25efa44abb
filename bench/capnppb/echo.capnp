# Cap'n Proto schema of the bench's echo and its pipelined chain.
# Regenerate echo.capnp.go (needs capnp from Debian's capnproto package
# and capnpc-go v3.1.0-alpha.1):
#
#   GOBIN=/tmp/gobin go install capnproto.org/go/capnp/v3/capnpc-go@v3.1.0-alpha.1
#   capnp compile -I "$(go env GOMODCACHE)/capnproto.org/go/capnp/v3@v3.1.0-alpha.1/std" \
#     -o/tmp/gobin/capnpc-go echo.capnp

@0xd4c9c8e4a1b2f3e5;

using Go = import "/go.capnp";
$Go.package("capnppb");
$Go.import("github.com/arbor-rpc/arbor/bench/capnppb");

interface Echo {
  echo @0 (payload :Data) -> (payload :Data);
}

# Calc is the pipelining peer of Arbor's promise chain: add takes a Value
# capability (possibly a promise: the result of an earlier add not yet
# returned) and a number, and returns a Value; the server reads its
# argument locally. A chain of N adds is sent without waiting, then one
# read.
interface Calc {
  add @0 (a :Value, b :Int64) -> (sum :Value);
  const @1 (n :Int64) -> (value :Value);
}

interface Value {
  read @0 () -> (n :Int64);
}
