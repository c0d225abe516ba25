
BYJP#ECΕγbCΖ>ΞB°¨¨BMΓk	ΓΗBbC£C&‚CΝa Γ¥Ώ*Γ>¥B$K‰BρίCc)C{=<ΓQ%5Γ5¬QΒYν„Β