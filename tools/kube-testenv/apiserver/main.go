// Command kube-apiserver is a thin wrapper around k8s.io/kubernetes/cmd/kube-apiserver/app,
// built by tools/kube-testenv/build.sh for jobq's Kueue test tier. It is the same main as
// upstream's cmd/kube-apiserver/apiserver.go; only the module around it differs, so that it can
// be built from the Go module proxy (k8s.io/kubernetes is not meant to be required as a module:
// its go.mod requires the staging modules at v0.0.0, which go.mod here replaces with v0.X.Y).
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
