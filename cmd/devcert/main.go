// Command devcert creates (or reuses) a local certificate authority and a
// server certificate for running brokerd over HTTPS on this machine. It
// needs no network. make run calls it with -dir .run/tls.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/moonmind/broker/internal/devcert"
)

func main() {
	dir := flag.String("dir", ".run/tls", "folder for ca.pem, ca-key.pem, cert.pem and key.pem")
	hosts := flag.String("hosts", strings.Join(devcert.DefaultHosts, ","), "comma-separated DNS names and IP addresses the server certificate covers")
	flag.Parse()

	paths, err := devcert.Ensure(devcert.Config{Dir: *dir, Hosts: strings.Split(*hosts, ",")})
	if err != nil {
		fmt.Fprintf(os.Stderr, "devcert: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("CA certificate:     %s\nserver certificate: %s\nserver key:         %s\n", paths.CA, paths.Cert, paths.CertKey)
}
