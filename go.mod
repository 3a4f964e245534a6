module github.com/statspipe/statspipe

go 1.26
