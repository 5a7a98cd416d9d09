// Package servers builds and runs the three bench servers by name (raw,
// baseline, bridge) from command-line flags. The tbraw, tbbaseline and
// tbserver commands and the generator's own server mode ("tbload serve")
// all go through Main, so a server behaves the same however it is started.
package servers
