
BhJ0L≠DQÃ8IHK √ŒFaM4NEK·C∞H©Õ≈∆H«…6F≈q»BE¢B®?ôK