package orchestration

// Watching reports how many watches fw holds open.
func Watching(fw *FeedWaiter) int { return fw.watching() }
