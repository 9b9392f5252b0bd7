module species-classifier/hack/offline/capwrap

go 1.22
