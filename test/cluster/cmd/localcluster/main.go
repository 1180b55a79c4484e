// Command localcluster runs the local test cluster in the foreground:
//
//	localcluster up --dir .cluster    # runs until SIGINT/SIGTERM
//	localcluster down --dir .cluster  # stops it and removes .cluster
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cuerator/cuerator/test/cluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return fmt.Errorf("usage: localcluster up|down [--dir DIR] [--bin DIR]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".cluster", "data directory (etcd data, certificates, kubeconfig, logs)")
	bin := fs.String("bin", "", "directory with the cluster binaries (default: $"+cluster.EnvBinDir+" or <repo>/bin/cluster)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args[0] == "down" {
		return cluster.Down(ctx, *dir)
	}
	return cluster.Up(ctx, cluster.Options{BinDir: *bin, DataDir: *dir}, func(c *cluster.Cluster) {
		fmt.Printf("cluster ready: KUBECONFIG=%s\n", c.KubeconfigPath)
	})
}
