// Package streaming is the TaskBridge streaming runtime.
package streaming
