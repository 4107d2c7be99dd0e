module github.com/costar-project/costar

go 1.26.8
