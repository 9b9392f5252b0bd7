//go:build tools

// Keeps MetalLB's two commands in this module's build list (go build ./... builds nothing of its own).
package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
