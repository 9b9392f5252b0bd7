// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version go.mod pins.
// etcd's own main package lives in a module that replaces its siblings with local paths, so it cannot be
// built from the module proxy; etcdmain.Main is the whole of that main package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
