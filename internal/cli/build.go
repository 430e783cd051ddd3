package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBuildCmd() *cobra.Command {
	return &cobra.Command{
		Use: "build",
		RunE: func(*cobra.Command, []string) error { return errors.New("build: not written yet") },
	}
}
