// Package house holds accel's house rules as a test: formatting, vet, and
// the import direction DESIGN.md gives the packages, so that `go test
// ./...` keeps the layout from eroding.
package house
